//! Any bytes as an embedding cache file, twice: as the whole file (magic and checksum must
//! hold), and as a body framed with a valid magic and checksum, which lets the fuzzer reach the
//! bincode decoder. Decoded or refused, never a panic or an allocation the body cannot justify
//! (libFuzzer's -malloc_limit_mb catches that; see scripts/fuzz.sh).
#![no_main]

use store::cache::{framed, EmbeddingFile};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(file) = EmbeddingFile::from_bytes(bytes) {
        // Accepted files are consistent: one vector of the model's width per frame, ascending.
        let width = file.header.model.dimension as usize;
        assert_eq!(file.vectors.len(), file.frames.len() * width);
        assert!(file.frames.windows(2).all(|w| w[0] < w[1]));
        // Frames that could not be decoded: ascending, and never also embedded.
        assert!(file.missing.windows(2).all(|w| w[0] < w[1]));
        assert!(file.missing.iter().all(|m| file.frames.binary_search(m).is_err()));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    check(&framed(data));
});
