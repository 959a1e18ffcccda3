//! A search over the whole library, as it travels between the page, the CLI and the engine:
//! the query with its filters, and the moments found, across videos.
//!
//! Invariants: results name videos by library id and file name, never by path; a result is a
//! moment (hits of one video no further apart than the gap), its peak frame the best hit;
//! scores are exact cosines; at most `per_video` results per video, best peaks first.

use serde::{Deserialize, Serialize};

/// Results a page of the search shows, and the most one answer gives.
pub const LIBRARY_PAGE: usize = 20;
pub const MAX_LIBRARY_RESULTS: usize = 200;
pub const DEFAULT_PER_VIDEO: usize = 3;
pub const MAX_PER_VIDEO: usize = 50;
/// Hits of one video closer than this many seconds are one moment.
pub const MOMENT_GAP_S: f64 = 2.0;

/// A library search: text, an image (encoded bytes), or both; and where to look.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LibraryQuery {
    pub text: Option<String>,
    #[serde(with = "serde_bytes")]
    pub image: Option<Vec<u8>>,
    /// Only these videos (library ids); empty: every video.
    pub videos: Vec<String>,
    /// Only the videos of these folders (their names as the library lists them); empty: all.
    pub folders: Vec<String>,
    /// `None`: the default model.
    pub model: Option<String>,
    /// Moments whose peak scores below this are left out.
    pub min_score: Option<f32>,
    /// Moments shorter than this many seconds are left out.
    pub min_len_s: f64,
    /// Results wanted after `offset` (clamped to [`MAX_LIBRARY_RESULTS`]).
    pub top: usize,
    pub offset: usize,
    pub per_video: usize,
}

/// One moment found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LibraryHit {
    pub video_id: String,
    /// The video's file name (never a path).
    pub video: String,
    /// The peak frame, and its exact cosine with the query.
    pub frame: u64,
    pub time_s: f64,
    pub score: f32,
    pub start_frame: u64,
    pub end_frame: u64,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LibraryAnswer {
    pub results: Vec<LibraryHit>,
    /// The model that answered (its name).
    pub model: String,
    pub videos_searched: usize,
    pub vectors_searched: usize,
    /// Searched videos that are not fully indexed (their ids): searched over what they have.
    pub partial: Vec<String>,
    /// Library videos the filter allowed that have no vectors yet (their ids).
    pub not_indexed: Vec<String>,
    /// More results lie past these.
    pub more: bool,
}

/// A moment of one video: its first and last hit, its best.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moment {
    pub start: u64,
    pub end: u64,
    pub peak: u64,
    pub score: f32,
}

/// Hits `(frame, score)` of one video grouped into moments: hits no more than `gap` frames
/// apart are one moment. Best peak first.
pub fn group_hits(hits: &[(u64, f32)], gap: u64) -> Vec<Moment> {
    let mut by_frame: Vec<(u64, f32)> = hits.iter().copied().filter(|h| h.1.is_finite()).collect();
    by_frame.sort_by_key(|h| h.0);
    let mut moments: Vec<Moment> = Vec::new();
    for (frame, score) in by_frame {
        match moments.last_mut() {
            Some(m) if frame - m.end <= gap => {
                m.end = frame;
                if score > m.score {
                    m.peak = frame;
                    m.score = score;
                }
            }
            _ => moments.push(Moment {
                start: frame,
                end: frame,
                peak: frame,
                score,
            }),
        }
    }
    moments.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.peak.cmp(&b.peak)));
    moments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_close_together_are_one_moment_peaking_at_the_best() {
        let hits = [
            (10, 0.5),
            (12, 0.7),
            (100, 0.9),
            (14, 0.6),
            (40, 0.2),
            (101, 0.8),
        ];
        let moments = group_hits(&hits, 5);
        assert_eq!(
            moments,
            vec![
                Moment {
                    start: 100,
                    end: 101,
                    peak: 100,
                    score: 0.9
                },
                Moment {
                    start: 10,
                    end: 14,
                    peak: 12,
                    score: 0.7
                },
                Moment {
                    start: 40,
                    end: 40,
                    peak: 40,
                    score: 0.2
                },
            ]
        );
        assert_eq!(group_hits(&hits, 100).len(), 1);
        assert!(group_hits(&[], 3).is_empty());
        assert_eq!(group_hits(&[(3, f32::NAN)], 3), vec![]);
    }
}
