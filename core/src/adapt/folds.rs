//! Blocked folds: neighbouring frames are near copies, so what goes to a fold is a whole
//! labelled segment or a whole gap between segments (a *block*), never single frames. A
//! frame-level split would test on the twins of training frames and report near-perfect AP
//! for anything.
//!
//! Invariants: blocks are runs of equal truth within one stretch of one video (a block never
//! spans two videos, nor an ignored span); every row is in exactly one fold, the fold of its block; the positive blocks are
//! spread over the folds first (largest first, each to the fold with the fewest positive rows),
//! then the negative ones the same way, so every fold's training rows hold both classes.

use std::fmt;

use super::{DEFAULT_FOLDS, MAX_FOLDS, MIN_POSITIVE_SEGMENTS};

/// A run of rows `start..end` of one truth in one video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub start: usize,
    pub end: usize,
    pub positive: bool,
}

impl Block {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// The runs of equal truth, cut where the stretch changes. `video` gives each row's stretch
/// (its video, and a new one across every ignored span).
pub fn blocks(truth: &[bool], video: &[u32]) -> Vec<Block> {
    debug_assert_eq!(truth.len(), video.len());
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=truth.len() {
        if i == truth.len() || truth[i] != truth[start] || video[i] != video[start] {
            out.push(Block {
                start,
                end: i,
                positive: truth[start],
            });
            start = i;
        }
    }
    out
}

/// Why the labels cannot be cross-validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FoldError {
    /// Fewer labelled segments of the prompt than a fold needs to test on one it did not train on.
    TooFewSegments {
        found: usize,
    },
    /// Every evaluated frame is labelled as the prompt, or all but one stretch.
    TooFewGaps {
        found: usize,
    },
    TooManyFolds {
        asked: usize,
        blocks: usize,
    },
    TooFewFolds {
        asked: usize,
    },
}

impl fmt::Display for FoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFewSegments { found } => write!(
                f,
                "the prompt has {found} labelled segment{} among the embedded frames; adapting needs at least {MIN_POSITIVE_SEGMENTS}, so that each is tested by a model trained on the others: label another span where it holds",
                if *found == 1 { "" } else { "s" }
            ),
            Self::TooFewGaps { found } => write!(
                f,
                "the frames outside the prompt's labels form {found} stretch{}; adapting needs at least 2 (frames where the prompt does not hold, on both sides of a labelled span), so that each is tested by a model trained on the others",
                if *found == 1 { "" } else { "es" }
            ),
            Self::TooManyFolds { asked, blocks } => write!(
                f,
                "{asked} folds asked for, but the labels make only {blocks} blocks (labelled segments and the gaps between them, each kept whole in one fold): ask for {blocks} folds or fewer"
            ),
            Self::TooFewFolds { asked } => {
                write!(f, "{asked} folds asked for: cross-validation needs 2 to {MAX_FOLDS}")
            }
        }
    }
}

impl std::error::Error for FoldError {}

/// The folds of a set of rows.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldPlan {
    pub folds: usize,
    pub blocks: Vec<Block>,
    /// The fold of each block.
    pub block_fold: Vec<u8>,
    /// The fold of each row.
    pub row_fold: Vec<u8>,
    /// What was decided for the user (fewer folds than the default).
    pub notes: Vec<String>,
}

impl FoldPlan {
    pub fn positive_segments(&self) -> usize {
        self.blocks.iter().filter(|b| b.positive).count()
    }
}

/// Cuts the rows into blocks and assigns them to `asked` folds (default [`DEFAULT_FOLDS`], or
/// as many as there are blocks when fewer).
pub fn plan(truth: &[bool], video: &[u32], asked: Option<usize>) -> Result<FoldPlan, FoldError> {
    let blocks = blocks(truth, video);
    let positives = blocks.iter().filter(|b| b.positive).count();
    let negatives = blocks.len() - positives;
    if positives < MIN_POSITIVE_SEGMENTS {
        return Err(FoldError::TooFewSegments { found: positives });
    }
    if negatives < 2 {
        return Err(FoldError::TooFewGaps { found: negatives });
    }
    let mut notes = Vec::new();
    let folds = match asked {
        Some(k) if !(2..=MAX_FOLDS).contains(&k) => {
            return Err(FoldError::TooFewFolds { asked: k })
        }
        Some(k) if k > blocks.len() => {
            return Err(FoldError::TooManyFolds {
                asked: k,
                blocks: blocks.len(),
            })
        }
        Some(k) => k,
        None if blocks.len() < DEFAULT_FOLDS => {
            notes.push(format!(
                "{} folds: the labels make only {} blocks (labelled segments and the gaps between them)",
                blocks.len(),
                blocks.len()
            ));
            blocks.len()
        }
        None => DEFAULT_FOLDS,
    };
    let block_fold = assign(&blocks, folds);
    let mut row_fold = vec![0u8; truth.len()];
    for (block, &fold) in blocks.iter().zip(&block_fold) {
        row_fold[block.start..block.end].fill(fold);
    }
    Ok(FoldPlan {
        folds,
        blocks,
        block_fold,
        row_fold,
        notes,
    })
}

/// Each block's fold: each class's blocks, largest first, go to the fold holding the fewest
/// rows of that class so far (the lowest fold among equals): deterministic, and balanced.
pub fn assign(blocks: &[Block], folds: usize) -> Vec<u8> {
    let mut fold_of = vec![0u8; blocks.len()];
    for class in [true, false] {
        let mut order: Vec<usize> = (0..blocks.len())
            .filter(|&b| blocks[b].positive == class)
            .collect();
        order.sort_by(|&a, &b| blocks[b].len().cmp(&blocks[a].len()).then(a.cmp(&b)));
        let mut rows = vec![0usize; folds];
        for b in order {
            let fold = (0..folds)
                .min_by_key(|&f| (rows[f], f))
                .expect("at least one fold");
            fold_of[b] = fold as u8;
            rows[fold] += blocks[b].len();
        }
    }
    fold_of
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth_of(runs: &[(bool, usize)]) -> Vec<bool> {
        runs.iter()
            .flat_map(|&(t, n)| std::iter::repeat_n(t, n))
            .collect()
    }

    #[test]
    fn no_segment_is_split_and_every_row_is_in_one_fold() {
        let truth = truth_of(&[
            (false, 40),
            (true, 10),
            (false, 25),
            (true, 30),
            (false, 5),
            (true, 8),
            (false, 60),
            (true, 12),
            (false, 9),
        ]);
        let video = vec![0u32; truth.len()];
        let plan = plan(&truth, &video, Some(3)).unwrap();
        assert_eq!(plan.folds, 3);
        assert_eq!(plan.blocks.len(), 9);
        assert_eq!(plan.row_fold.len(), truth.len());
        for (block, &fold) in plan.blocks.iter().zip(&plan.block_fold) {
            assert!(
                plan.row_fold[block.start..block.end]
                    .iter()
                    .all(|&f| f == fold),
                "a block split across folds: {block:?}"
            );
            assert!((fold as usize) < plan.folds);
        }
        // Blocks tile the rows: each row in exactly one block.
        let mut covered = vec![0; truth.len()];
        for b in &plan.blocks {
            covered[b.start..b.end].iter_mut().for_each(|c| *c += 1);
        }
        assert!(covered.iter().all(|&c| c == 1));
        // Both classes in every fold's training rows (all folds but one).
        for held in 0..3u8 {
            let (mut p, mut n) = (0, 0);
            for (i, &f) in plan.row_fold.iter().enumerate() {
                if f != held {
                    if truth[i] {
                        p += 1
                    } else {
                        n += 1
                    }
                }
            }
            assert!(p > 0 && n > 0, "fold {held}");
        }
        // The four positive segments (30, 12, 10, 8 rows) spread: 30 | 12 | 10 then 8 to the
        // fold with 10.
        let positive_rows = |f: u8| {
            (0..truth.len())
                .filter(|&i| truth[i] && plan.row_fold[i] == f)
                .count()
        };
        let mut spread: Vec<usize> = (0..3).map(positive_rows).collect();
        spread.sort();
        assert_eq!(spread, vec![12, 18, 30]);
    }

    #[test]
    fn blocks_stop_where_the_video_changes() {
        let truth = [true, true, true, false, false];
        let video = [0, 0, 1, 1, 1];
        let b = blocks(&truth, &video);
        assert_eq!(
            b,
            vec![
                Block {
                    start: 0,
                    end: 2,
                    positive: true
                },
                Block {
                    start: 2,
                    end: 3,
                    positive: true
                },
                Block {
                    start: 3,
                    end: 5,
                    positive: false
                },
            ]
        );
    }

    #[test]
    fn too_few_segments_gaps_or_blocks_say_so() {
        let one = truth_of(&[(false, 10), (true, 5), (false, 10)]);
        let video = vec![0; one.len()];
        let error = plan(&one, &video, None).unwrap_err();
        assert_eq!(error, FoldError::TooFewSegments { found: 1 });
        assert!(error.to_string().contains("at least 2"), "{error}");
        let all = vec![true; 10];
        assert_eq!(
            plan(&all, &[0; 10], None).unwrap_err(),
            FoldError::TooFewSegments { found: 1 }
        );
        let edges = truth_of(&[(true, 5), (false, 10), (true, 5)]);
        assert_eq!(
            plan(&edges, &[0; 20], None).unwrap_err(),
            FoldError::TooFewGaps { found: 1 }
        );
        let two = truth_of(&[(false, 10), (true, 5), (false, 10), (true, 5)]);
        let video = vec![0; two.len()];
        let error = plan(&two, &video, Some(5)).unwrap_err();
        assert_eq!(
            error,
            FoldError::TooManyFolds {
                asked: 5,
                blocks: 4
            }
        );
        assert!(error.to_string().contains("4 folds or fewer"), "{error}");
        assert_eq!(
            plan(&two, &video, Some(1)).unwrap_err(),
            FoldError::TooFewFolds { asked: 1 }
        );
        // Unasked, the folds shrink to the blocks, and the plan says so.
        let shrunk = plan(&two, &video, None).unwrap();
        assert_eq!(shrunk.folds, 4);
        assert!(shrunk.notes[0].contains("only 4 blocks"));
    }
}
