//! The bytes of a cache file on disk, and how they are written and read back.
//!
//! Framing: 8 magic bytes, a bincode 2 body whose first field is its `u32` format version, and a
//! 64-bit FNV-1a checksum of the body. Writes are atomic (temporary file in the same folder,
//! fsync, rename, fsync of the folder), so a crash leaves either the old file or the new one. A
//! file that fails any check is moved aside (`NAME.bad-N`), never deleted. Decoding is bounded,
//! so no length field of a damaged file can make bincode allocate what it claims.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::CacheError;
use crate::fnv::Fnv64;

const MAGIC: &[u8; 8] = b"CLIPVIC\x01";

/// Magic + `body` + checksum: a cache file's bytes.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut checksum = Fnv64::new();
    checksum.update(body);
    [MAGIC.as_slice(), body, &checksum.finish().to_le_bytes()].concat()
}

/// The body between magic and checksum, if both are right.
pub(super) fn checked_body(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("no cache header".into());
    }
    let (body, tail) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - 8);
    let mut checksum = Fnv64::new();
    checksum.update(body);
    if tail != checksum.finish().to_le_bytes() {
        return Err("checksum mismatch".into());
    }
    Ok(body)
}

/// Writes `value` (whose first field is its `u32` format version) atomically: a temporary
/// file in the same folder, fsync, rename, fsync of the folder. Other files of the cache
/// folder (the frame index) are written this way too.
pub fn write_versioned<T: Serialize>(path: &Path, value: &T) -> Result<(), CacheError> {
    write_body(path, &encode(path, value)?)
}

pub(super) fn encode<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, CacheError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| CacheError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Writes magic + `body` + checksum atomically (see [`write_versioned`]).
pub(super) fn write_body(path: &Path, body: &[u8]) -> Result<(), CacheError> {
    write_atomically(path, &framed(body)).map_err(|source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces `path` with `bytes` atomically: a temporary file in the same folder (created if
/// missing), fsync, rename, fsync of the folder. A crash leaves the old file or the new one;
/// a killed writer's temporary file is `.NAME.tmp-PID-N` ([`remove_stale_temporaries`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Unique per process and write, so concurrent writers never share a temporary file.
    let temporary = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// Removes temporary files that a killed writer of `path` left beside it (a write in progress
/// when the process died): named `.NAME.tmp-PID-N`, from a process that no longer runs.
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(
                    "removed {}, left by a process that died while writing",
                    entry.path().display()
                ),
                Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

/// Reads a file written by [`write_versioned`] whose first field is `version`. `Ok(None)`: no
/// file. Damaged files and files of another format version are moved aside and reported.
pub fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    version: u32,
) -> Result<Option<T>, CacheError> {
    let Some((_, body)) = read_checked_body(path, version..=version)? else {
        return Ok(None);
    };
    decode_bounded(&body)
        .map(|(value, _)| Some(value))
        .map_err(|e| corrupt(path, &e.to_string()))
}

/// The checked body of a file whose format version is one of `versions` (see
/// [`read_versioned`]), and that version.
pub(super) fn read_checked_body(
    path: &Path,
    versions: std::ops::RangeInclusive<u32>,
) -> Result<Option<(u32, Vec<u8>)>, CacheError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CacheError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let body = checked_body(&bytes).map_err(|reason| corrupt(path, &reason))?;
    // The version is the first field: check it before trusting the rest of the layout.
    let found: u32 = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|_| corrupt(path, "unreadable version"))?;
    if !versions.contains(&found) {
        return Err(match move_aside(path) {
            Ok(moved_to) => CacheError::OtherFormat {
                path: path.to_path_buf(),
                found,
                expected: *versions.end(),
                moved_to,
            },
            Err(source) => CacheError::Io {
                path: path.to_path_buf(),
                source,
            },
        });
    }
    Ok(Some((found, body.to_vec())))
}

/// bincode decoding with a byte budget. bincode allocates what a length field claims before it
/// reads the bytes, so an unbounded decode of a damaged or hostile file (with a valid checksum)
/// could ask for exabytes and abort the process (found by `mutated_bodies_decode_or_are_refused`).
/// The budget is a power of two at least 8x the body: valid files claim at most about their
/// body's size (plus 8 bytes per varint-encoded u64), so only impossible claims fail.
pub(super) fn decode_bounded<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    use bincode::config::standard;
    use bincode::serde::decode_from_slice;
    let need = body.len().saturating_mul(8);
    if need <= 1 << 20 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 20 }>())
    } else if need <= 1 << 24 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 24 }>())
    } else if need <= 1 << 28 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 28 }>())
    } else if need <= 1 << 32 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 32 }>())
    } else if need <= 1 << 36 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 36 }>())
    } else {
        decode_from_slice(body, standard().with_limit::<{ 1 << 40 }>())
    }
}

pub(super) fn corrupt(path: &Path, reason: &str) -> CacheError {
    match move_aside(path) {
        Ok(moved_to) => CacheError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.to_string(),
            moved_to,
        },
        Err(source) => CacheError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Renames a bad file to `NAME.bad-N` beside it, keeping it for inspection.
pub(super) fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    for n in 1.. {
        let target = PathBuf::from(format!("{}.bad-{n}", path.display()));
        if !target.exists() {
            std::fs::rename(path, &target)?;
            tracing::warn!(
                "moved the unreadable cache file {} aside to {}",
                path.display(),
                target.display()
            );
            return Ok(target);
        }
    }
    unreachable!("an unused name exists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::{header, sample};
    use crate::cache::{EmbeddingFile, SkipRecord, FORMAT_VERSION};

    #[test]
    fn damaged_files_are_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.clipemb");
        sample().save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x40;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated mid-write", good[..good.len() * 2 / 3].to_vec()),
            ("bit flip", flipped),
            ("garbage", b"hello, this is not a cache".repeat(10)),
            ("empty", Vec::new()),
        ];
        for (what, bytes) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let error = EmbeddingFile::load(&path, &header("tiny")).unwrap_err();
            let CacheError::Corrupt { moved_to, .. } = &error else {
                panic!("{what}: {error}")
            };
            assert!(!path.exists(), "{what}");
            assert_eq!(
                std::fs::read(moved_to).unwrap(),
                bytes,
                "{what}: kept as it was"
            );
        }
    }

    #[test]
    fn another_format_version_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.clipemb");
        let mut old = sample();
        old.header.format_version = FORMAT_VERSION + 1;
        old.save(&path).unwrap();
        let error = EmbeddingFile::load(&path, &header("tiny")).unwrap_err();
        assert!(
            matches!(error, CacheError::OtherFormat { found, .. } if found == FORMAT_VERSION + 1),
            "{error}"
        );
    }

    /// xorshift64*: reproducible mutations without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The libFuzzer inputs committed under server/fuzz/seeds (crash inputs included), replayed
    /// on the stable toolchain: each decodes consistently or is refused, as a whole file and as
    /// a framed body.
    #[test]
    fn committed_fuzz_inputs_decode_or_are_refused() {
        // The folder as `cargo test` names it at run time: a test binary reused from a clone at
        // another path (cargo does not rebuild a crate whose files did not change) would carry
        // that clone's path in `env!`.
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
            || env!("CARGO_MANIFEST_DIR").into(),
            std::path::PathBuf::from,
        );
        let dir = manifest.join("../server/fuzz/seeds/cache_file");
        let mut replayed = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for candidate in [bytes.clone(), framed(&bytes)] {
                if let Ok(file) = EmbeddingFile::from_bytes(&candidate) {
                    assert!(file.is_consistent(), "{}", path.display());
                }
            }
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("crash-")
            {
                assert!(
                    EmbeddingFile::from_bytes(&bytes).is_err(),
                    "{}",
                    path.display()
                );
                assert!(EmbeddingFile::from_bytes(&framed(&bytes)).is_err());
            }
            replayed += 1;
        }
        assert!(replayed >= 4, "{replayed} inputs in {}", dir.display());
    }

    /// Mutation fuzzing of the decoder behind a valid checksum (what a file written by a buggy
    /// or hostile program would present): every mutant decodes to a consistent file or is
    /// refused; none panics or allocates what its length fields claim.
    #[test]
    fn mutated_bodies_decode_or_are_refused() {
        let mut file = sample();
        file.skip = Some(SkipRecord {
            threshold_milli_levels: 1000,
            reused: vec![1],
        });
        let path = Path::new("fuzz.clipemb");
        let mut body = encode(path, &file).unwrap();
        body.extend(encode(path, file.scene.as_ref().unwrap()).unwrap());
        body.extend(encode(path, file.skip.as_ref().unwrap()).unwrap());
        let version = crate::cache::FORMAT_VERSION;
        assert_eq!(EmbeddingFile::decode(&body, version).unwrap(), file);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let (mut decoded, mut refused) = (0, 0);
        for round in 0..20_000 {
            let mut mutant = body.clone();
            match next(&mut state) % 5 {
                0 => {
                    for _ in 0..1 + next(&mut state) % 4 {
                        let at = (next(&mut state) % mutant.len() as u64) as usize;
                        mutant[at] ^= 1 << (next(&mut state) % 8);
                    }
                }
                1 => mutant.truncate((next(&mut state) % body.len() as u64) as usize),
                2 => {
                    let at = (next(&mut state) % mutant.len() as u64) as usize;
                    let extra: Vec<u8> = (0..1 + next(&mut state) % 16)
                        .map(|_| next(&mut state) as u8)
                        .collect();
                    mutant.splice(at..at, extra);
                }
                // Length and count fields claiming enormous sizes (bincode's varint markers).
                3 => {
                    let at = (next(&mut state) % mutant.len() as u64) as usize;
                    let marker = [0xfb, 0xfc, 0xfd][(next(&mut state) % 3) as usize];
                    mutant.splice(
                        at..at,
                        [marker, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                    );
                }
                _ => {
                    let at = (next(&mut state) % mutant.len() as u64) as usize;
                    mutant[at] = next(&mut state) as u8;
                }
            }
            let result = std::panic::catch_unwind(|| EmbeddingFile::decode(&mutant, version));
            match result {
                Ok(Ok(f)) => {
                    assert!(f.is_consistent(), "round {round}");
                    decoded += 1;
                }
                Ok(Err(_)) => refused += 1,
                Err(_) => panic!("round {round}: the decoder panicked on {mutant:?}"),
            }
        }
        assert!(refused > 10_000, "{refused} refused, {decoded} decoded");
    }
}
