//! SentencePiece's `spiece.model`, which SigLIP checkpoints ship instead of `tokenizer.json`,
//! read into the `tokenizers` library's form exactly as transformers' `SpmConverter` writes
//! it: the model's precompiled normalisation map, trailing spaces stripped, runs of spaces made
//! one `▁`, `▁` before each word (Metaspace), and the Unigram model with its pieces' scores.
//!
//! Invariants: only Unigram models are read (SigLIP's); a file that is not a SentencePiece
//! model, or another kind of one, is an error naming the file, never a guessed tokenizer.

use std::path::Path;

use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Precompiled, Replace, Sequence, Strip};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::{AddedToken, NormalizerWrapper, Tokenizer};

/// A SentencePiece piece's type (sentencepiece_model.proto).
const UNKNOWN: u64 = 2;
const CONTROL: u64 = 3;
const BYTE: u64 = 6;
/// `TrainerSpec.model_type`: 1 = UNIGRAM.
const UNIGRAM: u64 = 1;

/// What the tokenizer is built from.
#[derive(Debug, Default, PartialEq)]
struct SpmModel {
    /// Piece, score, type.
    pieces: Vec<(String, f32, u64)>,
    model_type: u64,
    precompiled_charsmap: Vec<u8>,
    add_dummy_prefix: bool,
}

/// One protobuf field: its number and its value (varints and fixed numbers as integers).
enum Value<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

/// The fields of one protobuf message, in order.
fn fields(mut bytes: &[u8]) -> Result<Vec<(u64, Value<'_>)>, String> {
    fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first().ok_or("the file ends inside a number")?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a number is longer than 10 bytes".into())
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let value = match key & 7 {
            0 => Value::Int(varint(&mut bytes)?),
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                let (raw, rest) = bytes
                    .split_at_checked(n)
                    .ok_or("the file ends inside a number")?;
                bytes = rest;
                Value::Int(raw.iter().rev().fold(0, |v, &b| v << 8 | u64::from(b)))
            }
            2 => {
                let n = usize::try_from(varint(&mut bytes)?).map_err(|e| e.to_string())?;
                let (raw, rest) = bytes
                    .split_at_checked(n)
                    .ok_or("a field runs past the end of the file")?;
                bytes = rest;
                Value::Bytes(raw)
            }
            other => return Err(format!("unknown protobuf wire type {other}")),
        };
        out.push((key >> 3, value));
    }
    Ok(out)
}

fn parse(bytes: &[u8]) -> Result<SpmModel, String> {
    let mut model = SpmModel {
        model_type: UNIGRAM,
        add_dummy_prefix: true,
        ..SpmModel::default()
    };
    for (field, value) in fields(bytes)? {
        match (field, value) {
            // ModelProto.pieces
            (1, Value::Bytes(piece)) => {
                let (mut text, mut score, mut kind) = (None, 0f32, 1u64);
                for (field, value) in fields(piece)? {
                    match (field, value) {
                        (1, Value::Bytes(s)) => {
                            text = Some(String::from_utf8(s.to_vec()).map_err(|e| e.to_string())?)
                        }
                        (2, Value::Int(bits)) => score = f32::from_bits(bits as u32),
                        (3, Value::Int(k)) => kind = k,
                        _ => {}
                    }
                }
                model
                    .pieces
                    .push((text.ok_or("a piece has no text")?, score, kind));
            }
            // ModelProto.trainer_spec.model_type
            (2, Value::Bytes(spec)) => {
                for (field, value) in fields(spec)? {
                    if let (3, Value::Int(kind)) = (field, value) {
                        model.model_type = kind;
                    }
                }
            }
            // ModelProto.normalizer_spec: precompiled_charsmap, add_dummy_prefix
            (3, Value::Bytes(spec)) => {
                for (field, value) in fields(spec)? {
                    match (field, value) {
                        (2, Value::Bytes(map)) => model.precompiled_charsmap = map.to_vec(),
                        (3, Value::Int(flag)) => model.add_dummy_prefix = flag != 0,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(model)
}

/// The tokenizer of a SentencePiece Unigram model file, as `tokenizer.json` would give it.
pub fn tokenizer_from_spiece(path: &Path) -> Result<Tokenizer, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let model = parse(&bytes).map_err(|e| format!("not a SentencePiece model: {e}"))?;
    if model.model_type != UNIGRAM {
        return Err(format!(
            "a SentencePiece model of type {} (1 is Unigram, SigLIP's; 2 is BPE)",
            model.model_type
        ));
    }
    if model.pieces.is_empty() {
        return Err("not a SentencePiece model: it has no pieces".into());
    }
    let unk = model.pieces.iter().position(|p| p.2 == UNKNOWN);
    let byte_fallback = model.pieces.iter().any(|p| p.2 == BYTE);
    let vocab: Vec<(String, f64)> = model
        .pieces
        .iter()
        .map(|(piece, score, _)| (piece.clone(), f64::from(*score)))
        .collect();
    let unigram = Unigram::from(vocab, unk, byte_fallback).map_err(|e| e.to_string())?;
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if !model.precompiled_charsmap.is_empty() {
        let map = Precompiled::from(&model.precompiled_charsmap).map_err(|e| e.to_string())?;
        normalizers.push(map.into());
    }
    normalizers.push(Strip::new(false, true).into());
    normalizers.push(
        Replace::new(ReplacePattern::Regex(" {2,}".into()), "▁")
            .map_err(|e| e.to_string())?
            .into(),
    );
    let prepend = if model.add_dummy_prefix {
        PrependScheme::Always
    } else {
        PrependScheme::Never
    };
    let mut tokenizer = Tokenizer::new(unigram);
    tokenizer
        .with_normalizer(Some(Sequence::new(normalizers)))
        .with_pre_tokenizer(Some(Metaspace::new('▁', prepend, true)));
    let special: Vec<AddedToken> = model
        .pieces
        .iter()
        .filter(|p| p.2 == CONTROL)
        .map(|(piece, _, _)| AddedToken::from(piece.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&special);
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_fields_are_read_and_damage_is_an_error() {
        // pieces { piece: "a" score: 0.5 type: 1 }, trainer_spec { model_type: 2 }
        let bytes = [
            0x0a, 0x0a, 0x0a, 0x01, b'a', 0x15, 0x00, 0x00, 0x00, 0x3f, 0x18, 0x01, 0x12, 0x02,
            0x18, 0x02,
        ];
        let model = parse(&bytes).unwrap();
        assert_eq!(model.pieces, vec![("a".to_string(), 0.5, 1)]);
        assert_eq!(model.model_type, 2);
        assert!(parse(&bytes[..8]).is_err());
        assert!(parse(&[0x0f]).is_err(), "wire type 7");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spiece.model");
        std::fs::write(&path, bytes).unwrap();
        let error = tokenizer_from_spiece(&path).err().unwrap();
        assert!(error.contains("type 2"), "{error}");
        std::fs::write(&path, "not a model at all").unwrap();
        assert!(tokenizer_from_spiece(&path).is_err());
    }
}
