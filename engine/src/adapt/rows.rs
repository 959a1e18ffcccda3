//! The labelled rows of a prompt, gathered from the videos' caches and labels: one row per
//! embedded frame that no `ignore` span leaves out, positive inside the prompt's segments.
//! And the fingerprint of the labels an adapter was trained on.
//!
//! Invariants: rows come in video order, then frame order (blocks are runs of rows); a new
//! stretch starts with each video and across each `ignore` span (two segments an ignored span
//! separates are two blocks, not one run); a video
//! without a segment of the prompt contributes no rows (its frames were never judged for the
//! prompt, so they are not negatives), and the notes say so; a video whose cache covers only
//! part of it contributes what is embedded, and the notes say so.

use std::borrow::Cow;

use investigator_core::labels::Labels;
use store::cache::EmbeddingFile;
use store::fnv::Fnv64;

use super::train::TrainingRows;
use super::AdaptError;

/// One video's cache and labels, as the training reads them.
pub struct LabelledVideo<'a> {
    /// The id the report and the lists give (a library id, or the file's name).
    pub id: String,
    /// Its content key (fingerprint), which an adapter's scope lists.
    pub key: String,
    pub file: &'a EmbeddingFile,
    pub labels: &'a Labels,
    /// Frames the index plans (a partly indexed video has fewer embedded).
    pub planned: usize,
}

/// The rows of `prompt` over `videos`, and what was left out.
pub fn gather<'a>(
    videos: &[LabelledVideo<'a>],
    prompt: &str,
) -> Result<(TrainingRows<'a>, Vec<String>), AdaptError> {
    let mut notes = Vec::new();
    let used: Vec<&LabelledVideo> = videos
        .iter()
        .filter(|v| !v.labels.spans(prompt).is_empty())
        .collect();
    if used.is_empty() {
        return Err(AdaptError::NoLabels {
            prompt: prompt.to_string(),
        });
    }
    for v in videos.iter().filter(|v| v.labels.spans(prompt).is_empty()) {
        notes.push(format!(
            "{} has no segment labelled {prompt:?}: left out (its frames were not judged for the prompt)",
            v.id
        ));
    }
    let dim = used[0].file.dimension();
    for v in &used {
        if v.file.frames.is_empty() {
            return Err(AdaptError::NotIndexed {
                video: v.id.clone(),
            });
        }
        if v.file.dimension() != dim {
            return Err(AdaptError::Dimension {
                text: dim,
                images: v.file.dimension(),
            });
        }
        if v.file.covered() < v.planned {
            notes.push(format!(
                "{}: {} of {} frames are embedded so far; trained and tested on those",
                v.id,
                v.file.frames.len(),
                v.planned
            ));
        }
    }
    let mut truth = Vec::new();
    let mut video = Vec::new();
    let mut frame = Vec::new();
    let mut stretch = Vec::new();
    let mut kept_rows: Vec<(usize, usize)> = Vec::new();
    let mut current = 0u32;
    for (k, v) in used.iter().enumerate() {
        let ignored = v.labels.ignored();
        let positive = v.labels.spans(prompt);
        let inside = |spans: &[(u64, u64)], n: u64| spans.iter().any(|&(s, e)| s <= n && n <= e);
        let mut previous: Option<u64> = None;
        if k > 0 {
            current += 1;
        }
        for (row, &f) in v.file.frames.iter().enumerate() {
            if inside(&ignored, f) {
                continue;
            }
            // An ignored span between this row and the last starts a new stretch.
            if previous.is_some_and(|p| ignored.iter().any(|&(s, e)| p < s && e < f)) {
                current += 1;
            }
            previous = Some(f);
            truth.push(inside(&positive, f));
            video.push(k as u32);
            frame.push(f);
            stretch.push(current);
            kept_rows.push((k, row));
        }
    }
    // One video with every row kept: its cache's vectors as they are (no copy of 10^5 rows).
    let vectors: Cow<'a, [f32]> = if used.len() == 1 && kept_rows.len() == used[0].file.frames.len()
    {
        Cow::Borrowed(used[0].file.vectors.as_slice())
    } else {
        let mut out = Vec::with_capacity(kept_rows.len() * dim);
        for &(k, row) in &kept_rows {
            out.extend_from_slice(&used[k].file.vectors[row * dim..(row + 1) * dim]);
        }
        Cow::Owned(out)
    };
    let videos_out = used
        .iter()
        .map(|v| {
            let fps = v.file.header.video_fps_micros as f64 / 1e6;
            (v.id.clone(), if fps > 0.0 { fps } else { 30.0 })
        })
        .collect();
    Ok((
        TrainingRows {
            vectors,
            dim,
            truth,
            video,
            frame,
            stretch,
            videos: videos_out,
        },
        notes,
    ))
}

/// The fingerprint of the labels an adapter of `prompt` learns from: each video's key with
/// its segments of the prompt and its `ignore` spans (other prompts' labels do not count).
pub fn labels_fingerprint<'a>(
    videos: impl IntoIterator<Item = (&'a str, &'a Labels)>,
    prompt: &str,
) -> String {
    let mut parts: Vec<(&str, Vec<(u64, u64)>, Vec<(u64, u64)>)> = videos
        .into_iter()
        .map(|(key, labels)| (key, labels.spans(prompt), labels.ignored()))
        .filter(|(_, spans, _)| !spans.is_empty())
        .collect();
    parts.sort();
    let mut hash = Fnv64::new();
    hash.update(prompt.as_bytes());
    for (key, spans, ignored) in parts {
        hash.update(key.as_bytes());
        for (tag, list) in [(b'+', spans), (b'-', ignored)] {
            hash.update(&[tag]);
            for (s, e) in list {
                hash.update(&s.to_le_bytes());
                hash.update(&e.to_le_bytes());
            }
        }
    }
    format!("{:016x}", hash.finish())
}

#[cfg(test)]
mod tests {
    use investigator_core::labels::Segment;

    use super::*;

    fn segment(prompt: &str, start: u64, end: u64) -> Segment {
        Segment {
            prompt: prompt.into(),
            start,
            end,
        }
    }

    #[test]
    fn the_fingerprint_follows_the_prompts_labels_only() {
        let a = Labels {
            segments: vec![segment("door", 10, 20), segment("ignore", 30, 31)],
        };
        let fp = labels_fingerprint([("v1", &a)], "door");
        let mut other_prompt = a.clone();
        other_prompt.segments.push(segment("stairs", 0, 5));
        assert_eq!(labels_fingerprint([("v1", &other_prompt)], "door"), fp);
        let mut moved = a.clone();
        moved.segments[0].end = 21;
        assert_ne!(labels_fingerprint([("v1", &moved)], "door"), fp);
        let mut ignored = a.clone();
        ignored.segments[1].end = 32;
        assert_ne!(labels_fingerprint([("v1", &ignored)], "door"), fp);
        assert_ne!(labels_fingerprint([("v2", &a)], "door"), fp);
    }
}
