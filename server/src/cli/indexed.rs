//! An indexed video as the reading commands (`scores`, `search`, `export`, `moments`, `cuts`)
//! see it: its cache file, found by content without opening the video where it can be, the
//! model that made it, and its curves for prompts.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use engine::adapt::Adapter;
use engine::embed::Embedder;
use engine::indexing::{load_cache, VideoToIndex};
use engine::video::FrameIndex;
use investigator_core::adapt::{blended_probabilities, check_alpha};
use investigator_core::scores::{
    fill_frames_with_gaps, fill_radius, sigmoid_per_prompt, smooth, softmax_over_prompts,
};
use store::cache::{EmbeddingFile, ModelKey, TextCache};
use store::config::Settings;

use super::args::ModelArgs;
use super::settings::{check_sampling, index_options, resolve};

/// An indexed video with its embeddings and the model that made them.
pub struct Indexed {
    pub video: VideoToIndex,
    /// The video's frame index when it was at hand or saved: exact frame times.
    pub frame_index: Option<Arc<FrameIndex>>,
    pub file: EmbeddingFile,
    pub embedder: Arc<dyn Embedder>,
    pub settings: Settings,
    pub radius: u64,
    pub complete: bool,
}

/// Opens the embedding index of `path` for the model `args` name (the text tower loads only
/// when a prompt is new). Notes on stderr what is partial or damaged.
pub fn open_indexed(
    path: &Path,
    args: &ModelArgs,
    sample_fps: Option<f64>,
) -> anyhow::Result<Indexed> {
    check_sampling(sample_fps, None)?;
    let mut settings = resolve(args)?;
    // The video at hand is the one a first int8 check samples.
    settings.video_path = path.to_path_buf();
    let options = index_options(&settings, sample_fps, None);
    let embedder = engine::precision::load_lazy(&settings).context("cannot load the model")?;
    let (video, cached) = VideoToIndex::open_indexed(path, embedder.as_ref(), &options)
        .context("cannot open the video")?;
    let file = match cached {
        Some(file) => file,
        None => {
            let (_, file, problem) = load_cache(&video, embedder.as_ref(), &options);
            if let Some(problem) = problem {
                eprintln!("note: {problem}");
            }
            file
        }
    };
    let planned = video.plan(options.sample_fps).len();
    let frame_index = video
        .frames
        .clone()
        .or_else(|| FrameIndex::saved(&options.cache_dir, &video.fingerprint));
    if file.frames.is_empty() {
        bail!(
            "{} is not indexed with {} yet. Run `clip-investigator index {}` first.",
            path.display(),
            embedder.identity().name,
            path.display()
        );
    }
    if file.covered() < planned {
        eprintln!(
            "note: {} of {planned} frames are indexed; the answer covers those. `clip-investigator index` resumes the rest.",
            file.covered()
        );
    }
    if !file.missing.is_empty() {
        eprintln!(
            "note: {} frames could not be decoded (the file is damaged there): their scores are empty (null in JSON)",
            file.missing.len()
        );
    }
    let radius = fill_radius(video.meta.fps, options.sample_fps);
    let complete = file.covered() == planned;
    Ok(Indexed {
        video,
        frame_index,
        file,
        embedder,
        settings,
        radius,
        complete,
    })
}

impl Indexed {
    /// Seconds from frame 0 to `frame`: its presentation time where the frame index is known.
    pub fn time_s(&self, frame: u64) -> f64 {
        match &self.frame_index {
            Some(frame_index) if frame < frame_index.frames() => frame_index.time_s(frame),
            _ => investigator_core::types::seconds_at(frame, self.video.meta.fps),
        }
    }

    /// Text embeddings through the per-model text cache.
    pub fn embed_prompts(&self, prompts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        investigator_core::requests::check_prompts(prompts)?;
        for prompt in prompts {
            if self.embedder.is_truncated(prompt) {
                eprintln!(
                    "note: the prompt {:?} is longer than CLIP's 77 tokens; only its start is used",
                    prompt.chars().take(60).collect::<String>()
                );
            }
        }
        let mut cache = TextCache::open(
            &self.settings.embeddings_dir,
            ModelKey::from(&self.embedder.identity()),
        );
        Ok(cache
            .embed(|chunk| self.embedder.embed_texts(chunk), prompts)
            .context("cannot embed the prompts")?)
    }

    /// Per-frame series for frames `0..covered`, after the optional probabilities (the model's
    /// own: CLIP's softmax over the prompts, SigLIP's sigmoid per prompt) and smoothing.
    pub fn score_table(
        &self,
        prompts: &[String],
        window: usize,
        probabilities: bool,
    ) -> anyhow::Result<(u64, Vec<Vec<f32>>)> {
        let vectors = self.embed_prompts(prompts)?;
        let (covered, mut series) =
            engine::search::frame_scores(&self.file, &vectors, self.radius, self.complete);
        if probabilities {
            let scale = self.embedder.logit_scale();
            series = match self.embedder.logit_bias() {
                Some(bias) => sigmoid_per_prompt(&series, scale, bias),
                None => softmax_over_prompts(&series, scale),
            };
        }
        Ok((covered, series.iter().map(|s| smooth(s, window)).collect()))
    }
}

impl Indexed {
    /// An adapter file's prompt as a per-frame probability (frames `0..covered`), blended at
    /// `alpha` (else the adapter's own), filled and smoothed as the cosine curves are. The
    /// adapter must be this model's.
    pub fn adapted_series(
        &self,
        file: &Path,
        alpha: Option<f64>,
        covered: u64,
        window: usize,
    ) -> anyhow::Result<(Adapter, f64, Vec<f32>)> {
        let adapter = Adapter::read(file)?;
        adapter.check_model(&ModelKey::from(&self.embedder.identity()))?;
        let alpha = match alpha {
            Some(alpha) => check_alpha(alpha).map_err(anyhow::Error::msg)?,
            None => adapter.alpha,
        };
        let scores = adapter.chart_scores(&self.file, false);
        let values = blended_probabilities(&scores, alpha);
        let radius = if self.complete { u64::MAX } else { self.radius };
        let mut filled = fill_frames_with_gaps(
            &self.file.frames,
            &values,
            &self.file.missing,
            self.file.header.video_frames,
            radius,
        );
        filled.truncate(covered as usize);
        Ok((adapter, alpha, smooth(&filled, window)))
    }
}

/// The prompts given, else the config's `CLIP:` list; none at all is an error.
pub fn prompts_or_config(prompts: Vec<String>, settings: &Settings) -> anyhow::Result<Vec<String>> {
    let prompts = if prompts.is_empty() {
        settings.prompts.clone()
    } else {
        prompts
    };
    if prompts.is_empty() {
        bail!("no prompts: pass --prompt TEXT (repeatable) or list them under CLIP: in the config");
    }
    Ok(prompts)
}

/// What the values are: "cosine", or the probabilities of the model's family.
pub fn view_name(probabilities: bool, sigmoid: bool) -> &'static str {
    match (probabilities, sigmoid) {
        (false, _) => "cosine",
        (true, false) => "softmax",
        (true, true) => "sigmoid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_says_which_probabilities() {
        assert_eq!(view_name(false, true), "cosine");
        assert_eq!(view_name(true, false), "softmax");
        assert_eq!(view_name(true, true), "sigmoid");
    }

    #[test]
    fn prompts_come_from_the_command_else_the_config() {
        let settings = Settings {
            prompts: vec!["wall".into()],
            ..Settings::default()
        };
        assert_eq!(
            prompts_or_config(vec!["door".into()], &settings).unwrap(),
            vec!["door".to_string()]
        );
        assert_eq!(
            prompts_or_config(vec![], &settings).unwrap(),
            vec!["wall".to_string()]
        );
        let none = prompts_or_config(vec![], &Settings::default()).unwrap_err();
        assert!(none.to_string().contains("--prompt TEXT"), "{none}");
    }
}
