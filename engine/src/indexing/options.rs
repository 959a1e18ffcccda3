//! How an index is made: sampling, batch size, checkpoints, skipping similar frames, scene
//! cuts, and coarse to fine. The config gives the defaults; the command line overrides them.

use std::path::PathBuf;
use std::time::Duration;

use store::config::Settings;

#[derive(Clone, Debug)]
pub struct IndexOptions {
    pub cache_dir: PathBuf,
    /// Frames per second to embed; `None` = every frame.
    pub sample_fps: Option<f64>,
    pub batch_size: usize,
    /// Work between two saves of the cache file.
    pub checkpoint_every: Duration,
    /// Skip a frame whose model input differs from the last embedded frame's by less than
    /// this many grey levels (mean absolute difference), reusing that frame's vector.
    pub skip_similar: Option<f32>,
    /// Measure every decoded frame for scene cuts (on by default; off only to measure its
    /// cost in the benchmark).
    pub scene_cuts: bool,
    /// Coarse to fine: the first pass embeds one frame per this many seconds across the whole
    /// video, each next pass halves the spacing, until every planned frame is embedded.
    /// `None`: one straight pass from the start. Skipping similar frames compares each frame
    /// with the one before it, so it always runs straight.
    pub coarse_interval_s: Option<f64>,
    /// Bytes of prepared frames a coarse-to-fine pass may keep for the next two passes (frames
    /// it decodes on its way anyway), so that those need not decode the video again.
    pub keep_for_later_passes: usize,
}

/// What a coarse-to-fine index keeps for later passes by default: 512 MiB, 3,500 frames of a
/// 224 x 224 model.
pub const KEEP_FOR_LATER_PASSES: usize = 512 << 20;

impl IndexOptions {
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            sample_fps: None,
            batch_size: 8,
            checkpoint_every: Duration::from_secs(5),
            skip_similar: None,
            scene_cuts: true,
            coarse_interval_s: None,
            keep_for_later_passes: KEEP_FOR_LATER_PASSES,
        }
    }

    /// The first pass's spacing in plan positions, when this index runs coarse to fine.
    pub(super) fn first_spacing(&self, fps: f64) -> Option<f64> {
        let interval = self
            .coarse_interval_s
            .filter(|s| s.is_finite() && *s > 0.0)?;
        if self.skip_similar.is_some() {
            return None;
        }
        let plan_rate = match self.sample_fps {
            Some(rate) if rate > 0.0 && rate < fps => rate,
            _ => fps,
        };
        (plan_rate > 0.0).then_some(interval * plan_rate)
    }
}

/// The config's indexing settings (the command line overrides them after).
impl From<&Settings> for IndexOptions {
    fn from(settings: &Settings) -> Self {
        Self {
            cache_dir: settings.embeddings_dir.clone(),
            sample_fps: settings.sample_fps,
            batch_size: settings.batch_size,
            checkpoint_every: Duration::from_secs_f64(settings.checkpoint_secs.clamp(0.0, 3600.0)),
            skip_similar: settings.skip_similar,
            scene_cuts: true,
            coarse_interval_s: settings.progressive.then_some(settings.coarse_interval_s),
            keep_for_later_passes: usize::try_from(
                settings.progressive_memory_mb.saturating_mul(1 << 20),
            )
            .unwrap_or(usize::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coarse_first_pass_is_spaced_in_plan_positions() {
        let mut options = IndexOptions::new(PathBuf::from("cache"));
        assert_eq!(options.first_spacing(30.0), None, "straight by default");
        options.coarse_interval_s = Some(1.0);
        assert_eq!(options.first_spacing(30.0), Some(30.0));
        // Sampled at 5 fps, one second is five planned frames.
        options.sample_fps = Some(5.0);
        assert_eq!(options.first_spacing(30.0), Some(5.0));
        // A sampling rate at or above the video's is every frame.
        options.sample_fps = Some(60.0);
        assert_eq!(options.first_spacing(30.0), Some(30.0));
        // Skipping similar frames compares each frame with the one before: always straight.
        options.skip_similar = Some(1.0);
        assert_eq!(options.first_spacing(30.0), None);
        options.skip_similar = None;
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            options.coarse_interval_s = Some(bad);
            assert_eq!(options.first_spacing(30.0), None, "{bad}");
        }
        options.coarse_interval_s = Some(1.0);
        assert_eq!(
            options.first_spacing(0.0),
            None,
            "no frame rate, no spacing"
        );
    }

    #[test]
    fn the_config_gives_the_defaults() {
        let settings = Settings {
            sample_fps: Some(2.0),
            batch_size: 16,
            checkpoint_secs: 1e9,
            skip_similar: Some(2.0),
            progressive: true,
            coarse_interval_s: 0.5,
            progressive_memory_mb: 3,
            ..Settings::default()
        };
        let options = IndexOptions::from(&settings);
        assert_eq!(options.cache_dir, settings.embeddings_dir);
        assert_eq!(options.sample_fps, Some(2.0));
        assert_eq!(options.batch_size, 16);
        assert_eq!(
            options.checkpoint_every,
            Duration::from_secs(3600),
            "capped at an hour"
        );
        assert_eq!(options.skip_similar, Some(2.0));
        assert!(options.scene_cuts);
        assert_eq!(options.coarse_interval_s, Some(0.5));
        assert_eq!(options.keep_for_later_passes, 3 << 20);
        let straight = IndexOptions::from(&Settings {
            progressive: false,
            ..Settings::default()
        });
        assert_eq!(straight.coarse_interval_s, None);
        assert_eq!(straight.keep_for_later_passes, KEEP_FOR_LATER_PASSES);
    }
}
