//! The tokenizers the families share: CLIP's byte-pair tokens between start and end, padded to
//! the context (77 for OpenAI's models); SigLIP's text steps, tokens, end and padding to its
//! context (64).

use std::path::Path;

use super::config::ModelError;
use crate::embed::EmbedError;

/// Token ids of one prompt, padded to the context, and whether it had to be cut.
#[derive(Clone, Debug, PartialEq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    /// Position of the end token, where CLIP reads the text's embedding.
    pub end: usize,
    pub truncated: bool,
}

/// A family's tokenizer: a prompt's ids padded to the context, and where it is read.
pub(crate) trait TextTokenizer: Send + Sync {
    fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError>;
}

/// SigLIP's (and SigLIP 2's) tokenizer: `tokenizer.json`, with the text steps its tokenizer
/// class does before it, one end token, padding to the context with the pad token.
pub(crate) struct SiglipTokenizer {
    tokenizer: tokenizers::Tokenizer,
    steps: TextSteps,
    end_token: u32,
    pad_token: u32,
    context: usize,
}

/// What is done to a prompt before `tokenizer.json` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextSteps {
    /// `SiglipTokenizer.canonicalize_text` (SigLIP 1): lowercase, drop ASCII punctuation,
    /// collapse whitespace, strip.
    Canonicalize,
    /// Lowercase only (SigLIP 2's Gemma tokenizer, `do_lower_case`: it was trained so).
    Lowercase,
    Nothing,
    /// open_clip's `clean="canonicalize"` (its SigLIP checkpoints): HTML entities undone (twice,
    /// as it does), curly quotes made straight, `_` as a space, then SigLIP's canonicalisation.
    /// ftfy's repair of mojibake (text decoded with the wrong encoding) is not done.
    OpenClip,
}

impl SiglipTokenizer {
    /// Reads `tokenizer.json` and `tokenizer_config.json` (its class, pad and end tokens).
    pub(crate) fn load(
        folder: &Path,
        vocab_size: usize,
        context: usize,
    ) -> Result<Self, ModelError> {
        let mut path = folder.join("tokenizer.json");
        let spiece = folder.join("spiece.model");
        // SigLIP checkpoints ship SentencePiece's file only: read as transformers converts it.
        let mut tokenizer = if !path.is_file() && spiece.is_file() {
            path = spiece;
            super::spiece::tokenizer_from_spiece(&path).map_err(|message| {
                ModelError::Tokenizer {
                    path: path.clone(),
                    message,
                }
            })?
        } else {
            tokenizers::Tokenizer::from_file(&path).map_err(|e| ModelError::Tokenizer {
                path: path.clone(),
                message: e.to_string(),
            })?
        };
        // Truncation and padding are done here, to the model's context.
        tokenizer.with_padding(None);
        let _ = tokenizer.with_truncation(None);
        #[derive(serde::Deserialize, Default)]
        struct TokenizerConfig {
            tokenizer_class: Option<String>,
            pad_token: Option<serde_json::Value>,
            eos_token: Option<serde_json::Value>,
            do_lower_case: Option<bool>,
        }
        let config_path = folder.join("tokenizer_config.json");
        let config: TokenizerConfig = match std::fs::read_to_string(&config_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| ModelError::Tokenizer {
                path: config_path.clone(),
                message: e.to_string(),
            })?,
            Err(_) => TokenizerConfig::default(),
        };
        // A special token is a string, or an object with its `content`.
        let name = |value: &Option<serde_json::Value>| -> Option<String> {
            match value.as_ref()? {
                serde_json::Value::String(s) => Some(s.clone()),
                other => other.get("content")?.as_str().map(str::to_string),
            }
        };
        let siglip1 = config.tokenizer_class.as_deref() == Some("SiglipTokenizer");
        let default_end = if siglip1 { "</s>" } else { "<eos>" };
        let end_name = name(&config.eos_token).unwrap_or_else(|| default_end.into());
        let pad_name = name(&config.pad_token)
            .unwrap_or_else(|| if siglip1 { "</s>" } else { "<pad>" }.into());
        let token = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| ModelError::Tokenizer {
                    path: path.clone(),
                    message: format!("it has no {token} token, which tokenizer_config.json names"),
                })
        };
        let (end_token, pad_token) = (token(&end_name)?, token(&pad_name)?);
        if tokenizer.get_vocab_size(true) > vocab_size {
            return Err(ModelError::Tokenizer {
                path: path.clone(),
                message: format!(
                    "{} tokens, more than the model's vocabulary of {vocab_size}",
                    tokenizer.get_vocab_size(true),
                ),
            });
        }
        let steps = if siglip1 {
            TextSteps::Canonicalize
        } else if config.do_lower_case.unwrap_or(true) {
            TextSteps::Lowercase
        } else {
            TextSteps::Nothing
        };
        Ok(Self {
            tokenizer,
            steps,
            end_token,
            pad_token,
            context,
        })
    }

    /// The same tokenizer with open_clip's text cleaning in front (its SigLIP checkpoints).
    pub(crate) fn with_open_clip_cleaning(mut self) -> Self {
        self.steps = TextSteps::OpenClip;
        self
    }
}

impl TextTokenizer for SiglipTokenizer {
    /// The tokens, cut to leave room for the end token, the end token, then padding to the
    /// context; the text is read at the last position.
    fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError> {
        let text = match self.steps {
            TextSteps::Canonicalize => canonicalize(text),
            TextSteps::Lowercase => text.to_lowercase(),
            TextSteps::Nothing => text.to_string(),
            TextSteps::OpenClip => {
                let text = unescape_html(&unescape_html(text));
                canonicalize(&uncurl_quotes(&text).replace('_', " "))
            }
        };
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        let mut ids: Vec<u32> = encoding.get_ids().to_vec();
        let truncated = ids.len() > self.context - 1;
        ids.truncate(self.context - 1);
        ids.push(self.end_token);
        ids.resize(self.context, self.pad_token);
        Ok(Tokens {
            ids,
            end: self.context - 1,
            truncated,
        })
    }
}

/// HTML character references undone, as Python's `html.unescape` does for the named ones
/// prompts meet and for every numeric one (`&#39;`, `&#x27;`).
fn unescape_html(text: &str) -> String {
    const NAMED: &[(&str, &str)] = &[
        ("amp", "&"),
        ("lt", "<"),
        ("gt", ">"),
        ("quot", "\""),
        ("apos", "'"),
        ("nbsp", "\u{a0}"),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let reference = after.find(';').map(|end| (&after[..end], end));
        let decoded = reference.and_then(|(name, end)| {
            let character =
                if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .map(String::from)
                } else if let Some(decimal) = name.strip_prefix('#') {
                    decimal
                        .parse::<u32>()
                        .ok()
                        .and_then(char::from_u32)
                        .map(String::from)
                } else {
                    NAMED
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, c)| c.to_string())
                };
            character.map(|c| (c, end))
        });
        match decoded {
            Some((character, end)) => {
                out.push_str(&character);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// ftfy's `uncurl_quotes`: typographic quotes as ASCII ones.
fn uncurl_quotes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}' => '\'',
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' => '"',
            other => other,
        })
        .collect()
}

/// big_vision's (and transformers' `SiglipTokenizer`'s) text canonicalisation: lowercase,
/// delete ASCII punctuation, collapse whitespace runs to one space, strip.
pub fn canonicalize(text: &str) -> String {
    let kept: String = text
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `tokenizer.json` and the ids of its start and end tokens.
pub(crate) struct ClipTokenizer {
    tokenizer: tokenizers::Tokenizer,
    start_token: u32,
    end_token: u32,
    context: usize,
}

impl ClipTokenizer {
    /// Reads `tokenizer.json`, refusing one that is not CLIP's or does not fit the model's
    /// vocabulary of `vocab_size` tokens; prompts are padded or cut to `context` tokens.
    pub(crate) fn load(path: &Path, vocab_size: usize, context: usize) -> Result<Self, ModelError> {
        let tokenizer =
            tokenizers::Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
                path: path.into(),
                message: e.to_string(),
            })?;
        Self::new(tokenizer, path, vocab_size, context)
    }

    /// [`load`](Self::load) of a tokenizer already read (`path` names it in messages).
    pub(crate) fn new(
        tokenizer: tokenizers::Tokenizer,
        path: &Path,
        vocab_size: usize,
        context: usize,
    ) -> Result<Self, ModelError> {
        let token = |name: &str| {
            tokenizer
                .token_to_id(name)
                .ok_or_else(|| ModelError::Tokenizer {
                    path: path.into(),
                    message: format!("it has no {name} token: is it a CLIP tokenizer?"),
                })
        };
        let (start_token, end_token) = (token("<|startoftext|>")?, token("<|endoftext|>")?);
        if tokenizer.get_vocab_size(true) > vocab_size {
            return Err(ModelError::Tokenizer {
                path: path.into(),
                message: format!(
                    "{} tokens, more than the model's vocabulary of {vocab_size}",
                    tokenizer.get_vocab_size(true),
                ),
            });
        }
        Ok(Self {
            tokenizer,
            start_token,
            end_token,
            context,
        })
    }
}

impl TextTokenizer for ClipTokenizer {
    /// CLIP tokens of `text`: start, the BPE tokens (cut to fit), end, then padding.
    ///
    /// Padding uses id 0. It does not change the result: the text's embedding is read at the
    /// end token, and the causal mask hides later positions from it.
    fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        let mut body: Vec<u32> = encoding
            .get_ids()
            .iter()
            .copied()
            .filter(|&id| id != self.start_token && id != self.end_token)
            .collect();
        let truncated = body.len() > self.context - 2;
        body.truncate(self.context - 2);
        let mut ids = Vec::with_capacity(self.context);
        ids.push(self.start_token);
        ids.extend(body);
        ids.push(self.end_token);
        let end = ids.len() - 1;
        ids.resize(self.context, 0);
        Ok(Tokens {
            ids,
            end,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_references_and_curly_quotes_are_undone_as_open_clip_does() {
        // Twice, as open_clip calls html.unescape twice.
        assert_eq!(
            unescape_html(&unescape_html("fish &amp;amp; chips &lt;3")),
            "fish & chips <3"
        );
        assert_eq!(
            unescape_html("it&#39;s &#x27;x&#X27; &bogus; & done"),
            "it's 'x' &bogus; & done"
        );
        assert_eq!(uncurl_quotes("‘a’ “b”"), "'a' \"b\"");
        assert_eq!(
            canonicalize(&uncurl_quotes("snake_case").replace('_', " ")),
            "snake case"
        );
    }
}
