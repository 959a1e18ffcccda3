//! What a request may carry: the limits on prompts, searches and refinement spans, and the
//! checks that refuse the rest with a message saying what is wrong. The server functions, the
//! CLI and the page's own forms apply the same ones.

/// Longest span a viewer may ask to have refined first, in frames (an hour at 30 fps).
pub const MAX_LOOK_FRAMES: u64 = 108_000;
/// Most prompts one request may score.
pub const MAX_PROMPTS: usize = 1000;
/// Longest prompt accepted, in characters (CLIP reads 77 tokens; longer ones are cut).
pub const MAX_PROMPT_CHARS: usize = 10_000;
/// Largest image accepted for search.
pub const MAX_SEARCH_IMAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most results one search returns.
pub const MAX_SEARCH_RESULTS: usize = 100;

/// The message for anything given as a video id that is not one.
pub const NOT_A_VIDEO_ID: &str = "not a video id: open the list of videos and choose one";

/// A refused request argument; the message is meant for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{count} prompts; at most {MAX_PROMPTS} can be scored at once")]
    TooManyPrompts { count: usize },
    #[error("prompt {number} is empty")]
    EmptyPrompt { number: usize },
    #[error("prompt {number} has {chars} characters; at most {MAX_PROMPT_CHARS}")]
    PromptTooLong { number: usize, chars: usize },
    #[error(
        "look at frames from..=to with from <= to, at most {MAX_LOOK_FRAMES} frames; got {from}..={to}"
    )]
    BadLookSpan { from: u64, to: u64 },
}

/// A span to refine first: `from..=to`, not backwards, at most [`MAX_LOOK_FRAMES`] frames.
pub fn check_look_span(from: u64, to: u64) -> Result<(), RequestError> {
    if from > to || to - from >= MAX_LOOK_FRAMES {
        return Err(RequestError::BadLookSpan { from, to });
    }
    Ok(())
}

/// Checks a prompt list; the error says which prompt is wrong and why (numbered from 1).
pub fn check_prompts(prompts: &[String]) -> Result<(), RequestError> {
    if prompts.len() > MAX_PROMPTS {
        return Err(RequestError::TooManyPrompts {
            count: prompts.len(),
        });
    }
    for (i, prompt) in prompts.iter().enumerate() {
        if prompt.trim().is_empty() {
            return Err(RequestError::EmptyPrompt { number: i + 1 });
        }
        let chars = prompt.chars().count();
        if chars > MAX_PROMPT_CHARS {
            return Err(RequestError::PromptTooLong {
                number: i + 1,
                chars,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_to_refine_first_is_checked() {
        assert!(check_look_span(0, 0).is_ok());
        assert!(check_look_span(100, 700).is_ok());
        assert!(check_look_span(0, MAX_LOOK_FRAMES - 1).is_ok());
        assert!(check_look_span(0, MAX_LOOK_FRAMES).is_err());
        let backwards = check_look_span(9, 3).unwrap_err().to_string();
        assert!(backwards.contains("from <= to"), "{backwards}");
        assert!(check_look_span(u64::MAX, u64::MAX).is_ok());
        assert!(check_look_span(0, u64::MAX).is_err());
    }

    #[test]
    fn prompts_are_refused_with_their_number() {
        let prompts = |list: &[&str]| list.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert!(check_prompts(&prompts(&["a dog", "stairs"])).is_ok());
        assert_eq!(
            check_prompts(&prompts(&["a dog", "  "]))
                .unwrap_err()
                .to_string(),
            "prompt 2 is empty"
        );
        let long = "x".repeat(MAX_PROMPT_CHARS + 1);
        assert_eq!(
            check_prompts(&[long]).unwrap_err().to_string(),
            format!(
                "prompt 1 has {} characters; at most {MAX_PROMPT_CHARS}",
                MAX_PROMPT_CHARS + 1
            )
        );
        let many = vec!["a".to_string(); MAX_PROMPTS + 1];
        assert!(matches!(
            check_prompts(&many),
            Err(RequestError::TooManyPrompts { count }) if count == MAX_PROMPTS + 1
        ));
    }
}
