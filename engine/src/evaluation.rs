//! A video's embedding indexes held against its labels: each model's scores for each labelled
//! prompt (the same cosine scores `scores` prints), evaluated by `investigator_core::evaluation`,
//! and the first two models compared. Reads caches only: nothing is embedded but the prompts'
//! text (through the text cache).
//!
//! Invariant: the page's Evaluate panel and the CLI's `evaluate` call this with the same
//! inputs and so print the same numbers.

use investigator_core::evaluation::{
    compare, evaluate_prompt, evaluated_frames, Evaluation, ModelEvaluation, PromptInput,
};
use investigator_core::labels::Labels;
use investigator_core::scores::fill_frames_with_gaps;
use store::cache::EmbeddingFile;

use crate::embed::EmbedError;
use crate::indexing::cuts::cuts_in;
use crate::indexing::service::NotReady;
use crate::indexing::IndexService;
use crate::search::cosine_rows;
use crate::sync::read;
use investigator_core::types::IndexState;

/// One model's embedding index of the video and its text vectors for the prompts evaluated.
pub struct ModelScores<'a> {
    pub model: String,
    pub file: &'a EmbeddingFile,
    /// One vector per prompt, in the order of the prompts evaluated.
    pub prompts: Vec<Vec<f32>>,
    /// How far an embedded frame's score stands in for unembedded neighbours (the sampling).
    pub fill_radius: u64,
    /// Every planned frame is embedded.
    pub complete: bool,
}

/// The prompts to evaluate: the labelled ones, in the order asked for (`wanted`, when given:
/// those of them that have labels), else sorted.
pub fn prompts_to_evaluate(labels: &Labels, wanted: &[String]) -> Vec<String> {
    let labelled = labels.prompts();
    if wanted.is_empty() {
        return labelled;
    }
    wanted
        .iter()
        .filter(|p| labelled.contains(p))
        .cloned()
        .collect()
}

/// Evaluates every model on `prompts` (each of which has labels) against `labels`.
pub fn evaluate(models: &[ModelScores], prompts: &[String], labels: &Labels) -> Evaluation {
    let mut evaluation = Evaluation {
        ignored_frames: labels.ignored().iter().map(|(s, e)| e - s + 1).sum(),
        ..Evaluation::default()
    };
    let mut evaluated = Vec::new();
    for model in models {
        let file = model.file;
        let fps = file.header.video_fps_micros as f64 / 1e6;
        let (cuts, _) = cuts_in(file);
        let cuts: Vec<u64> = cuts.iter().map(|c| c.frame).collect();
        let radius = if model.complete {
            u64::MAX
        } else {
            model.fill_radius
        };
        let rows = cosine_rows(file, &model.prompts);
        let mut per_prompt = Vec::new();
        let mut frames_of_model = Vec::new();
        for (prompt, scores) in prompts.iter().zip(&rows) {
            let per_frame = fill_frames_with_gaps(
                &file.frames,
                scores,
                &file.missing,
                file.header.video_frames,
                radius,
            );
            per_prompt.push(evaluate_prompt(&PromptInput {
                prompt,
                frames: &file.frames,
                scores,
                per_frame: &per_frame,
                labels,
                fps,
                cuts: &cuts,
            }));
            frames_of_model.push(evaluated_frames(&file.frames, scores, labels, prompt));
        }
        evaluation.models.push(ModelEvaluation {
            model: model.model.clone(),
            prompts: per_prompt,
        });
        evaluated.push(frames_of_model);
    }
    if let [first, second, ..] = evaluated.as_slice() {
        evaluation.comparison = prompts
            .iter()
            .zip(first.iter().zip(second))
            .map(|(prompt, (a, b))| compare(prompt, a, b))
            .collect();
    }
    evaluation
}

/// Why a video's indexes cannot be evaluated now.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// A model is loading, or failed to load (the message says what to do).
    #[error(transparent)]
    NotReady(#[from] NotReady),
    #[error("{0} has embedded no frame of this video yet: wait for its index")]
    NotIndexed(String),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// Evaluates the index of each service (one per model, running or done) on `prompts`, with
/// what each has embedded so far.
pub fn evaluate_services(
    services: &[&IndexService],
    prompts: &[String],
    labels: &Labels,
) -> Result<Evaluation, EvaluationError> {
    let mut vectors = Vec::new();
    let mut names = Vec::new();
    for service in services {
        let embedder = service.ready_embedder()?;
        names.push(embedder.identity().name);
        vectors.push(service.embed_texts(embedder.as_ref(), prompts)?);
    }
    let mut guards = Vec::new();
    for (service, name) in services.iter().zip(&names) {
        let store = service
            .embeddings()
            .ok_or_else(|| EvaluationError::NotIndexed(name.clone()))?;
        guards.push(read(store));
    }
    let models: Vec<ModelScores> = services
        .iter()
        .zip(names)
        .zip(vectors)
        .zip(&guards)
        .map(|(((service, model), prompts), file)| ModelScores {
            model,
            file,
            prompts,
            fill_radius: service.fill_radius(),
            complete: service.status().state == IndexState::Done,
        })
        .collect();
    Ok(evaluate(&models, prompts, labels))
}

#[cfg(test)]
mod tests {
    use investigator_core::labels::Segment;
    use store::cache::{CacheHeader, ModelKey, VideoFingerprint, FORMAT_VERSION};

    use super::*;

    /// A 2-d "model" whose frames 20..=29 point at the prompt and the others away from it.
    fn file(good: bool) -> EmbeddingFile {
        let mut file = EmbeddingFile::new(CacheHeader {
            format_version: FORMAT_VERSION,
            model: ModelKey {
                name: if good { "good" } else { "flat" }.into(),
                revision: "1".into(),
                dimension: 2,
            },
            video: VideoFingerprint {
                size: 1,
                chunks_hash: 2,
            },
            sample_fps_millis: None,
            video_frames: 60,
            video_fps_micros: 10_000_000,
        });
        for n in 0..60u64 {
            let on = (20..30).contains(&n);
            let angle: f32 = if good && on {
                0.1
            } else {
                1.0 + (n % 5) as f32 * 0.05
            };
            file.push_embedded(n, &[angle.cos(), angle.sin()]);
        }
        file
    }

    #[test]
    fn each_model_is_evaluated_and_the_first_two_compared() {
        let labels = Labels {
            segments: vec![
                Segment {
                    prompt: "door".into(),
                    start: 20,
                    end: 29,
                },
                Segment {
                    prompt: "stairs".into(),
                    start: 0,
                    end: 3,
                },
            ],
        };
        let prompts = prompts_to_evaluate(&labels, &["door".into(), "unlabelled".into()]);
        assert_eq!(
            prompts,
            vec!["door".to_string()],
            "a prompt without labels is not evaluated"
        );
        assert_eq!(prompts_to_evaluate(&labels, &[]), vec!["door", "stairs"]);
        let (good, flat) = (file(true), file(false));
        let model = |name: &str, file| ModelScores {
            model: name.into(),
            file,
            prompts: vec![vec![1.0, 0.0]],
            fill_radius: 0,
            complete: true,
        };
        let result = evaluate(
            &[model("good", &good), model("flat", &flat)],
            &prompts,
            &labels,
        );
        assert_eq!(result.models.len(), 2);
        let door = &result.models[0].prompts[0];
        assert_eq!((door.positives, door.negatives), (10, 50));
        assert_eq!((door.ap, door.roc_auc), (Some(1.0), Some(1.0)));
        assert_eq!(door.events.as_ref().unwrap().recall, Some(1.0));
        let flat_door = &result.models[1].prompts[0];
        assert!(flat_door.ap.unwrap() < 0.5);
        let comparison = &result.comparison[0];
        assert_eq!(comparison.frames, 60);
        assert!(comparison.difference.unwrap() > 0.5);
        let (low, high) = comparison.interval.unwrap();
        assert!(low > 0.0 && low <= high);
    }
}
