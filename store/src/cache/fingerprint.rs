//! Content fingerprint of a video file: its size and a 64-bit FNV-1a hash of 64 KiB at its
//! start, middle and end. It identifies a video by content, not by path: a renamed file still
//! hits, an edited one misses.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fnv::Fnv64;

/// Bytes hashed at the start, middle and end of a video for its fingerprint.
const FINGERPRINT_CHUNK: u64 = 64 * 1024;

/// Identifies a video by content, not by path: a renamed file still hits, an edited one misses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VideoFingerprint {
    pub size: u64,
    pub chunks_hash: u64,
}

impl VideoFingerprint {
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let mut hash = Fnv64::new();
        let mut chunk = vec![0u8; FINGERPRINT_CHUNK as usize];
        for start in [
            0,
            size.saturating_sub(FINGERPRINT_CHUNK) / 2,
            size.saturating_sub(FINGERPRINT_CHUNK),
        ] {
            file.seek(SeekFrom::Start(start))?;
            let n = read_up_to(&mut file, &mut chunk)?;
            hash.update(&chunk[..n]);
        }
        hash.update(&size.to_le_bytes());
        Ok(Self {
            size,
            chunks_hash: hash.finish(),
        })
    }

    pub fn short(&self) -> String {
        format!("{:016x}", self.chunks_hash)
    }
}

fn read_up_to(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_content_not_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.mp4");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&a, &bytes).unwrap();
        let renamed = dir.path().join("renamed.mp4");
        std::fs::copy(&a, &renamed).unwrap();
        assert_eq!(
            VideoFingerprint::of_file(&a).unwrap(),
            VideoFingerprint::of_file(&renamed).unwrap()
        );
        let mut edited = bytes.clone();
        edited[10] ^= 1;
        std::fs::write(&renamed, &edited).unwrap();
        assert_ne!(
            VideoFingerprint::of_file(&a).unwrap(),
            VideoFingerprint::of_file(&renamed).unwrap()
        );
    }
}
