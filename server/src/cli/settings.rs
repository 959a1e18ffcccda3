//! One way from the command line to `Settings`, for every subcommand, serve included: the config
//! file (the default `config.yaml` may be absent: then the defaults; a file named with --config
//! must exist), then the environment (`CLIP_INVESTIGATOR_*`, `ROBOFLOW_API_KEY`), then the flags.

use std::path::Path;

use anyhow::bail;
use engine::indexing::IndexOptions;
use store::config::Settings;

use super::args::{ConfigOnly, ModelArgs, ServeArgs};

/// What a subcommand's arguments say about settings.
pub trait SettingsArgs {
    /// The config file named (or the default `config.yaml`).
    fn config(&self) -> &Path;
    /// Applies the flags, which win over the file and the environment.
    fn apply(&self, _settings: &mut Settings) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Settings from the config file, the environment and the flags, in that order.
pub fn resolve(args: &impl SettingsArgs) -> anyhow::Result<Settings> {
    let config = args.config();
    let mut settings = if !config.exists() && config == Path::new("config.yaml") {
        Settings::default()
    } else {
        Settings::load(config)?
    };
    settings.apply_env()?;
    args.apply(&mut settings)?;
    Ok(settings)
}

/// Only a config file (`cache`).
pub struct ConfigArg<'a>(pub &'a Path);

impl SettingsArgs for ConfigArg<'_> {
    fn config(&self) -> &Path {
        self.0
    }
}

impl SettingsArgs for ConfigOnly {
    fn config(&self) -> &Path {
        &self.config
    }
}

impl SettingsArgs for ServeArgs {
    fn config(&self) -> &Path {
        &self.config
    }
    fn apply(&self, settings: &mut Settings) -> anyhow::Result<()> {
        if let Some(addr) = self.addr {
            settings.address = addr;
        }
        Ok(())
    }
}

impl SettingsArgs for ModelArgs {
    fn config(&self) -> &Path {
        &self.config
    }
    fn apply(&self, settings: &mut Settings) -> anyhow::Result<()> {
        match self.model.as_slice() {
            [] => {}
            [model] => settings.set_model(model.clone()),
            _ => bail!("only `scores` compares several models; give this command one --model"),
        }
        if let Some(backend) = self.backend {
            settings.backend = backend;
        }
        if let Some(runtime) = self.image_runtime {
            settings.image_runtime = runtime;
        }
        if let Some(precision) = self.precision {
            settings.precision = precision;
        }
        if let Some(patches) = self.max_num_patches {
            settings.max_num_patches = Some(patches);
        }
        if let Some(levels) = self.skip_similar {
            if !(levels.is_finite() && levels >= 0.0) {
                bail!("--skip-similar must be a number of grey levels >= 0, not {levels}");
            }
            settings.skip_similar = Some(levels);
        }
        Ok(())
    }
}

/// The config's indexing options with the command's `--sample-fps` and `--batch-size`.
pub(super) fn index_options(
    settings: &Settings,
    sample_fps: Option<f64>,
    batch_size: Option<usize>,
) -> IndexOptions {
    let options = IndexOptions::from(settings);
    IndexOptions {
        sample_fps: sample_fps.or(options.sample_fps),
        batch_size: batch_size.unwrap_or(options.batch_size),
        // The CLI indexes straight unless `index --progressive` says otherwise.
        coarse_interval_s: None,
        ..options
    }
}

pub(super) fn check_sampling(
    sample_fps: Option<f64>,
    batch_size: Option<usize>,
) -> super::CommandResult {
    if let Some(fps) = sample_fps {
        if !(fps.is_finite() && fps > 0.0) {
            bail!("--sample-fps must be a positive number, not {fps}");
        }
    }
    if let Some(size) = batch_size {
        if !(1..=256).contains(&size) {
            bail!("--batch-size must be from 1 to 256, not {size}");
        }
    }
    Ok(())
}
