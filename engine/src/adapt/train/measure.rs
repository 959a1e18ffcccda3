//! The report's figures from the tested rows' out-of-fold scores: each metric, its difference
//! from zero-shot with the block bootstrap's interval, each α's figures, and the two lists.
//!
//! Invariants: only rows scored out of fold are measured; the bootstrap resamples the fold
//! plan's blocks whole.

use investigator_core::adapt::folds::FoldPlan;
use investigator_core::adapt::suggest::{self, ScoredRows};
use investigator_core::adapt::{AlphaPoint, Differences, Metrics};
use investigator_core::evaluation::{bootstrap, ranking};

use super::Training;
use crate::adapt::select::Selection;

/// The tested rows' out-of-fold logits, to measure another blend with.
#[derive(Clone, Debug, Default)]
pub struct OutOfFold {
    pub truth: Vec<bool>,
    /// The bootstrap's blocks (`[start, end)` positions into the tested rows).
    pub blocks: Vec<(usize, usize)>,
    pub zero_shot: Vec<f64>,
    /// Before the blend, each with its fold's setting.
    pub adapted: Vec<f64>,
}

impl OutOfFold {
    /// The metrics and their differences from zero-shot with one blend `alpha` in every fold.
    pub fn at_alpha(&self, alpha: f64) -> (Metrics, Differences) {
        let blended: Vec<f64> = self
            .zero_shot
            .iter()
            .zip(&self.adapted)
            .map(|(&z, &a)| (1.0 - alpha) * z + alpha * a)
            .collect();
        let [ap, roc_auc, best_f1] = bootstrap::differences(
            &self.truth,
            &self.blocks,
            &blended,
            &self.zero_shot,
            bootstrap::SEED,
        );
        (
            metrics(&self.truth, &blended),
            Differences {
                ap,
                roc_auc,
                best_f1,
            },
        )
    }
}

pub(super) struct Measured {
    pub(super) zero_shot: Metrics,
    pub(super) adapted: Metrics,
    pub(super) differences: Differences,
    pub(super) by_alpha: Vec<AlphaPoint>,
    pub(super) label_next: Vec<investigator_core::adapt::LabelNext>,
    pub(super) suspect: Vec<investigator_core::adapt::Suspect>,
    pub(super) out_of_fold: OutOfFold,
}

fn metrics(truth: &[bool], scores: &[f64]) -> Metrics {
    let (ap, roc_auc, best_f1) = ranking::summary(truth, scores);
    Metrics {
        ap,
        roc_auc,
        best_f1: best_f1.map(|b| b.f1),
    }
}

/// The report's figures, all from the tested rows' out-of-fold scores.
pub(super) fn measure(
    training: &Training,
    selection: &Selection,
    alphas: &[f64],
    plan: &FoldPlan,
) -> Measured {
    let rows = &training.rows;
    let n = rows.truth.len();
    let tested: Vec<usize> = (0..n)
        .filter(|&i| selection.nested[i].is_finite())
        .collect();
    let truth: Vec<bool> = tested.iter().map(|&i| rows.truth[i]).collect();
    let zero: Vec<f64> = tested.iter().map(|&i| selection.zero_shot[i]).collect();
    let adapted: Vec<f64> = tested.iter().map(|&i| selection.nested[i]).collect();
    // The bootstrap resamples the plan's blocks (those tested), each whole.
    let mut position = vec![usize::MAX; n];
    for (k, &i) in tested.iter().enumerate() {
        position[i] = k;
    }
    let blocks: Vec<(usize, usize)> = plan
        .blocks
        .iter()
        .filter(|b| position[b.start] != usize::MAX)
        .map(|b| (position[b.start], position[b.end - 1] + 1))
        .collect();
    let [ap, roc_auc, best_f1] =
        bootstrap::differences(&truth, &blocks, &adapted, &zero, bootstrap::SEED);
    let by_alpha = alphas
        .iter()
        .zip(&selection.by_alpha)
        .map(|(&alpha, logits)| AlphaPoint {
            alpha,
            metrics: metrics(
                &truth,
                &tested.iter().map(|&i| logits[i]).collect::<Vec<_>>(),
            ),
        })
        .collect();
    let probabilities: Vec<f64> = selection
        .nested
        .iter()
        .map(|&z| investigator_core::adapt::sigmoid(z))
        .collect();
    let zero_probabilities: Vec<f64> = selection
        .zero_shot
        .iter()
        .map(|&z| investigator_core::adapt::sigmoid(z))
        .collect();
    let scored = ScoredRows {
        video: &tested.iter().map(|&i| rows.video[i]).collect::<Vec<_>>(),
        frame: &tested.iter().map(|&i| rows.frame[i]).collect::<Vec<_>>(),
        truth: &truth,
        adapted: &tested.iter().map(|&i| probabilities[i]).collect::<Vec<_>>(),
        zero_shot: &tested
            .iter()
            .map(|&i| zero_probabilities[i])
            .collect::<Vec<_>>(),
        videos: &rows.videos,
    };
    Measured {
        zero_shot: metrics(&truth, &zero),
        adapted: metrics(&truth, &adapted),
        differences: Differences {
            ap,
            roc_auc,
            best_f1,
        },
        by_alpha,
        label_next: suggest::label_next(&scored),
        suspect: suggest::suspects(&scored),
        out_of_fold: OutOfFold {
            zero_shot: zero.clone(),
            adapted: tested.iter().map(|&i| selection.adapted[i]).collect(),
            truth: truth.clone(),
            blocks: blocks.clone(),
        },
    }
}
