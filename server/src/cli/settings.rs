//! One way from the command line to `Settings`, for every subcommand, serve included: the config
//! file (the default `config.yaml` may be absent: then the defaults; a file named with --config
//! must exist), then the environment (`CLIP_INVESTIGATOR_*`, `ROBOFLOW_API_KEY`), then the flags.

use std::path::Path;

use crate::config::Settings;

use super::args::{ConfigOnly, ModelArgs, ServeArgs};

/// What a subcommand's arguments say about settings.
pub trait SettingsArgs {
    /// The config file named (or the default `config.yaml`).
    fn config(&self) -> &Path;
    /// Applies the flags, which win over the file and the environment.
    fn apply(&self, _settings: &mut Settings) -> Result<(), String> {
        Ok(())
    }
}

/// Settings from the config file, the environment and the flags, in that order.
pub fn resolve(args: &impl SettingsArgs) -> Result<Settings, String> {
    let config = args.config();
    let mut settings = if !config.exists() && config == Path::new("config.yaml") {
        Settings::default()
    } else {
        Settings::load(config).map_err(|e| e.to_string())?
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
    fn apply(&self, settings: &mut Settings) -> Result<(), String> {
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
    fn apply(&self, settings: &mut Settings) -> Result<(), String> {
        match self.model.as_slice() {
            [] => {}
            [model] => settings.set_model(model.clone()),
            _ => {
                return Err(
                    "only `scores` compares several models; give this command one --model".into(),
                )
            }
        }
        if let Some(backend) = self.backend {
            settings.backend = backend;
        }
        if let Some(engine) = self.image_engine {
            settings.image_engine = engine;
        }
        if let Some(levels) = self.skip_similar {
            if !(levels.is_finite() && levels >= 0.0) {
                return Err(format!(
                    "--skip-similar must be a number of grey levels >= 0, not {levels}"
                ));
            }
            settings.skip_similar = Some(levels);
        }
        Ok(())
    }
}
