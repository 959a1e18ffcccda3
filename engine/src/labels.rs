//! A video's ground-truth labels, in its labels file beside the caches (`store::labels`): read,
//! changed one edit at a time (add, remove, replace a segment), imported from a CSV in frames or
//! times, and exported. Times become exact frames through the video's frame index.
//!
//! Invariants: every change re-reads the file under its lock and applies the edit to what is
//! there (two tabs editing lose nothing); a refused edit or import leaves the file as it was;
//! what is written is normalised (sorted, overlapping segments of a prompt merged, with a note).

use std::path::{Path, PathBuf};

use investigator_core::labels::{
    parse_csv, segments_of, Bound, LabelError, Labels, Segment, MAX_LABEL_FILE_BYTES,
};
use store::cache::VideoFingerprint;

use crate::video::FrameIndex;

/// Why labels cannot be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum LabelFileError {
    #[error("cannot read or write the labels file {}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file (or an import, or an edit) is not valid labels; the message names the line.
    #[error("{}: {error}", .path.display())]
    Invalid { path: PathBuf, error: LabelError },
}

impl LabelFileError {
    /// The message for the browser: the file's name, never its folder.
    pub fn public(&self) -> String {
        match self {
            Self::Invalid { error, .. } => error.to_string(),
            Self::Io { path, .. } => crate::video::without_folder(&self.to_string(), path),
        }
    }

    /// Whether the request was wrong (a bad edit or import), not the server.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

/// The labels after a change, and what the change merged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Changed {
    pub labels: Labels,
    pub notes: Vec<String>,
}

/// One video's labels file.
#[derive(Clone, Debug)]
pub struct LabelStore {
    path: PathBuf,
}

impl LabelStore {
    /// The labels of the video with this content, in `cache_dir`.
    pub fn of_video(cache_dir: &Path, video: &VideoFingerprint) -> Self {
        Self {
            path: cache_dir.join(store::labels::file_name(video)),
        }
    }

    /// The labels file at `path`.
    pub fn at(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// The labels of the video at `video`, in `cache_dir` (reads the video's fingerprint).
    pub fn of_file(cache_dir: &Path, video: &Path) -> std::io::Result<Self> {
        Ok(Self::of_video(
            cache_dir,
            &VideoFingerprint::of_file(video)?,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, error: std::io::Error) -> LabelFileError {
        LabelFileError::Io {
            path: self.path.clone(),
            error,
        }
    }

    fn invalid(&self, error: LabelError) -> LabelFileError {
        LabelFileError::Invalid {
            path: self.path.clone(),
            error,
        }
    }

    /// Parses the file's bytes (none: no labels) for a video of `frames` frames.
    fn parse(&self, bytes: Option<Vec<u8>>, frames: u64) -> Result<Labels, LabelFileError> {
        let Some(bytes) = bytes else {
            return Ok(Labels::default());
        };
        let rows = parse_csv(&bytes, None).map_err(|e| self.invalid(e))?;
        // The file is written in frames; times are for imports (they need the frame index).
        if let Some(row) = rows.iter().find(|r| matches!(r.start, Bound::Seconds(_))) {
            return Err(self.invalid(LabelError::TimesInStoredFile { line: row.line }));
        }
        let mut labels = segments_of(&rows, frames, |bound, _| match bound {
            Bound::Frame(n) => n,
            Bound::Seconds(_) => u64::MAX,
        })
        .map_err(|e| self.invalid(e))?;
        labels.normalize();
        Ok(labels)
    }

    /// The labels as the file holds them now.
    pub fn load(&self, frames: u64) -> Result<Labels, LabelFileError> {
        let bytes = store::labels::read(&self.path).map_err(|e| self.io(e))?;
        self.parse(bytes, frames)
    }

    /// Applies `edit` to the file as it is, under its lock, and writes the result.
    pub fn change(
        &self,
        frames: u64,
        edit: impl FnOnce(&mut Labels) -> Result<Vec<String>, LabelError>,
    ) -> Result<Changed, LabelFileError> {
        let held = store::labels::lock(&self.path).map_err(|e| self.io(e))?;
        // A writer killed mid-save left its temporary file; the labels file itself is whole.
        store::cache::remove_stale_temporaries(&self.path);
        let mut labels = self.parse(held.read().map_err(|e| self.io(e))?, frames)?;
        let mut notes = edit(&mut labels).map_err(|e| self.invalid(e))?;
        notes.extend(labels.normalize());
        held.replace(labels.to_csv().as_bytes())
            .map_err(|e| self.io(e))?;
        Ok(Changed { labels, notes })
    }

    /// Adds a segment (merged with any of its prompt it overlaps).
    pub fn add(&self, frames: u64, segment: Segment) -> Result<Changed, LabelFileError> {
        self.change(frames, |labels| {
            check_segment(&segment, frames)?;
            Ok(labels.add(segment))
        })
    }

    /// Removes a segment; replaces it with `with` when given (its ends adjusted).
    pub fn replace(
        &self,
        frames: u64,
        segment: &Segment,
        with: Option<Segment>,
    ) -> Result<Changed, LabelFileError> {
        self.change(frames, |labels| {
            if let Some(new) = &with {
                check_segment(new, frames)?;
            }
            if !labels.remove(segment) {
                return Ok(vec![format!(
                    "{:?} frames {}-{} was not labelled (changed in another tab?); nothing removed",
                    segment.prompt, segment.start, segment.end
                )]);
            }
            Ok(with.map(|new| labels.add(new)).unwrap_or_default())
        })
    }

    /// Imports a CSV (frames, or times turned into frames by `frame_index`): merged into the
    /// labels there, or replacing them. Only `known` prompts (and `ignore`) when given.
    pub fn import(
        &self,
        bytes: &[u8],
        frame_index: &FrameIndex,
        known: Option<&[String]>,
        replace: bool,
    ) -> Result<Changed, LabelFileError> {
        let (imported, mut notes) =
            labels_from_csv(bytes, frame_index, known).map_err(|e| self.invalid(e))?;
        let mut changed = self.change(frame_index.frames(), move |labels| {
            if replace {
                labels.segments.clear();
            }
            labels.segments.extend(imported.segments);
            Ok(Vec::new())
        })?;
        notes.append(&mut changed.notes);
        changed.notes = notes;
        Ok(changed)
    }
}

/// Labels from a CSV in frames or times (times become frames through `frame_index`), checked
/// against the video and normalised, with what normalising merged. Only `known` prompts (and
/// `ignore`) when given.
pub fn labels_from_csv(
    bytes: &[u8],
    frame_index: &FrameIndex,
    known: Option<&[String]>,
) -> Result<(Labels, Vec<String>), LabelError> {
    let rows = parse_csv(bytes, known)?;
    let times = frame_index.times_s();
    let mut labels = segments_of(&rows, frame_index.frames(), |bound, is_end| match bound {
        Bound::Frame(n) => n,
        Bound::Seconds(s) => frame_at_time(&times, s, is_end),
    })?;
    let notes = labels.normalize();
    Ok((labels, notes))
}

/// Frames within this many seconds of a time count as at it: files and players round times
/// to the millisecond.
const TIME_TOLERANCE_S: f64 = 0.0005;

/// The first frame presented at or after `seconds` (a segment's start), or the last presented
/// at or before it (its end); `u64::MAX` (outside any video) where there is none.
fn frame_at_time(times: &[f64], seconds: f64, is_end: bool) -> u64 {
    if is_end {
        let after = times.partition_point(|&t| t <= seconds + TIME_TOLERANCE_S);
        after.checked_sub(1).map_or(u64::MAX, |n| n as u64)
    } else {
        let at = times.partition_point(|&t| t < seconds - TIME_TOLERANCE_S);
        if at < times.len() {
            at as u64
        } else {
            u64::MAX
        }
    }
}

/// An edit's segment must lie in the video, ends in order, with a prompt.
fn check_segment(segment: &Segment, frames: u64) -> Result<(), LabelError> {
    if segment.prompt.trim().is_empty() {
        return Err(LabelError::EmptyPrompt { line: 0 });
    }
    if segment.end < segment.start {
        return Err(LabelError::EndBeforeStart {
            line: 0,
            start: segment.start,
            end: segment.end,
        });
    }
    if segment.end >= frames {
        return Err(LabelError::OutsideVideo {
            line: 0,
            frame: segment.end,
            last: frames.saturating_sub(1),
        });
    }
    if segment.prompt.len() > 1000 {
        return Err(LabelError::TooLarge {
            bytes: segment.prompt.len().min(MAX_LABEL_FILE_BYTES),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_land_on_the_frames_presented_at_them() {
        // 10 fps: frame n at n / 10 s.
        let times: Vec<f64> = (0..50).map(|n| n as f64 / 10.0).collect();
        assert_eq!(frame_at_time(&times, 1.0, false), 10);
        assert_eq!(frame_at_time(&times, 1.0, true), 10);
        assert_eq!(
            frame_at_time(&times, 1.04, false),
            11,
            "a start between frames: the next"
        );
        assert_eq!(
            frame_at_time(&times, 1.04, true),
            10,
            "an end between frames: the last shown"
        );
        assert_eq!(
            frame_at_time(&times, 0.9996, false),
            10,
            "millisecond rounding"
        );
        assert_eq!(frame_at_time(&times, 99.0, false), u64::MAX);
        assert_eq!(frame_at_time(&times, 99.0, true), 49);
    }

    fn segment(prompt: &str, start: u64, end: u64) -> Segment {
        Segment {
            prompt: prompt.into(),
            start,
            end,
        }
    }

    #[test]
    fn edits_apply_to_the_file_as_it_is_and_bad_ones_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LabelStore {
            path: dir.path().join("v.labels.csv"),
        };
        assert_eq!(store.load(100).unwrap(), Labels::default());
        store.add(100, segment("door", 10, 20)).unwrap();
        // Another writer (a second tab, or a hand edit) changes the file in between.
        let other = LabelStore {
            path: store.path.clone(),
        };
        other.add(100, segment("stairs", 0, 5)).unwrap();
        let changed = store.add(100, segment("door", 15, 30)).unwrap();
        assert_eq!(changed.labels.spans("door"), vec![(10, 30)]);
        assert_eq!(
            changed.labels.spans("stairs"),
            vec![(0, 5)],
            "the other edit is kept"
        );
        assert_eq!(
            changed.notes.len(),
            1,
            "the overlap is said: {:?}",
            changed.notes
        );
        let before = std::fs::read(&store.path).unwrap();
        for bad in [
            segment("door", 5, 2),
            segment("door", 90, 100),
            segment(" ", 1, 2),
        ] {
            assert!(store.add(100, bad).unwrap_err().is_bad_request());
        }
        assert_eq!(
            std::fs::read(&store.path).unwrap(),
            before,
            "refused edits change nothing"
        );
        let moved = store
            .replace(100, &segment("door", 10, 30), Some(segment("door", 12, 28)))
            .unwrap();
        assert_eq!(moved.labels.spans("door"), vec![(12, 28)]);
        let gone = store.replace(100, &segment("door", 12, 28), None).unwrap();
        assert!(gone.labels.spans("door").is_empty());
        let again = store.replace(100, &segment("door", 12, 28), None).unwrap();
        assert!(
            again.notes[0].contains("was not labelled"),
            "{:?}",
            again.notes
        );
    }

    #[test]
    fn a_damaged_file_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = LabelStore {
            path: dir.path().join("v.labels.csv"),
        };
        std::fs::write(
            &store.path,
            "prompt,start_frame,end_frame\ndoor,1,2\ndoor,x,3\n",
        )
        .unwrap();
        let error = store.load(100).unwrap_err().to_string();
        assert!(error.contains("line 3: start_frame"), "{error}");
        assert!(
            store.add(100, segment("door", 4, 5)).is_err(),
            "never written over"
        );
        assert!(std::fs::read_to_string(&store.path)
            .unwrap()
            .contains("door,x,3"));
    }
}
