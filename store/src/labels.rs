//! A video's labels file, beside its caches: `FINGERPRINT-SIZE.labels.csv` (keyed by the
//! video's content, like its frame index, so a renamed video keeps its labels). The engine
//! parses it; here it is only read and replaced.
//!
//! Invariants: every change is made under an exclusive lock on a sidecar `.lock` file (a lock
//! per open file, so it holds between threads and between processes: two tabs, or the server
//! and the CLI), to the file as it is on disk at that moment, never to a copy read earlier;
//! the file is replaced atomically (temporary file, fsync, rename, fsync of the folder), so a
//! crash or `kill -9` leaves the old labels or the new ones, never a mix.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::cache::{write_atomically, VideoFingerprint};

/// The labels file's name for a video with this content.
pub fn file_name(video: &VideoFingerprint) -> String {
    format!("{}-{}.labels.csv", video.short(), video.size)
}

/// The labels file of a video, locked for one read-change-write.
pub struct LockedLabels {
    path: PathBuf,
    // Held for the lifetime of the guard; the lock goes with the handle.
    _lock: File,
}

/// Locks the labels file at `path` (waiting for another holder), creating its folder.
pub fn lock(path: &Path) -> std::io::Result<LockedLabels> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    file.lock()?;
    Ok(LockedLabels {
        path: path.to_path_buf(),
        _lock: file,
    })
}

impl LockedLabels {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes as they are now; `None` when there is no file yet.
    pub fn read(&self) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the file atomically.
    pub fn replace(&self, bytes: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.path, bytes)
    }
}

/// Reads the labels file without taking the lock (a reader sees the old file or the new one:
/// writers replace it atomically). `None` when there is none.
pub fn read(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_the_file_as_it_is_and_replaces_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache/v.labels.csv");
        let held = lock(&path).unwrap();
        assert_eq!(held.read().unwrap(), None);
        held.replace(b"prompt,start_frame,end_frame\n").unwrap();
        assert_eq!(
            read(&path).unwrap().unwrap(),
            b"prompt,start_frame,end_frame\n"
        );
        drop(held);
        // Another holder waits for the first: the second change sees the first's file.
        let first = lock(&path).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let second_path = path.clone();
        let second = std::thread::spawn(move || {
            let held = lock(&second_path).unwrap();
            sender.send(()).unwrap();
            let seen = held.read().unwrap().unwrap();
            held.replace(&[seen.as_slice(), b"b,3,4\n"].concat())
                .unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            receiver.try_recv().is_err(),
            "the second waits while the first holds the lock"
        );
        let seen = first.read().unwrap().unwrap();
        first
            .replace(&[seen.as_slice(), b"a,1,2\n"].concat())
            .unwrap();
        drop(first);
        second.join().unwrap();
        assert_eq!(
            read(&path).unwrap().unwrap(),
            b"prompt,start_frame,end_frame\na,1,2\nb,3,4\n",
            "neither change is lost"
        );
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }
}
