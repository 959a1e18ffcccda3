//! `config.yaml`: the old app's keys (`roboflow_api_key`, `video_path`, `CLIP`) plus optional
//! new settings with defaults. Unknown keys are errors, so a typo is never silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod check;
mod defaults;
mod keys;

use defaults::*;
use keys::nearest_key;
pub use keys::KNOWN_KEYS;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Key for a Roboflow inference server. Never sent to the browser, never logged.
    #[serde(default)]
    pub roboflow_api_key: String,
    /// The video to open; relative paths are relative to the config file's folder.
    #[serde(default = "default_video_path")]
    pub video_path: PathBuf,
    /// Text prompts to compare every frame with.
    #[serde(rename = "CLIP", default)]
    pub prompts: Vec<String>,
    /// Where the web server listens. Loopback by default: the app is for this machine.
    #[serde(default = "default_address")]
    pub address: SocketAddr,
    /// JPEG quality (1-100) of the frames sent to the browser.
    #[serde(default = "default_jpeg_quality")]
    pub jpeg_quality: u8,
    /// Frames wider than this are scaled down before they are sent; 0 keeps the full width.
    #[serde(default = "default_display_width")]
    pub display_width: u32,
    /// How many viewers (tabs) may hold a decoder at once; the least recently used is closed.
    #[serde(default = "default_max_decoders")]
    pub max_decoders: usize,
    /// How many encoded frames are kept for repeated requests.
    #[serde(default = "default_frame_cache")]
    pub frame_cache: usize,
    /// Megabytes of encoded frames kept for every viewer of every video together.
    #[serde(default = "default_frame_cache_mb")]
    pub frame_cache_mb: usize,
    /// Make a display proxy (display size, a keyframe every 15 frames) of a video with sparse
    /// keyframes, so seeks decode a few small pictures instead of a whole GOP: `eager` (when
    /// the video is opened), `lazy` (at its first frame request) or `off` (`true` and `false`
    /// are read as `eager` and `off`).
    #[serde(default)]
    pub display_proxy: DisplayProxy,
    /// Where CLIP runs: in this process (`local`) or on a Roboflow inference server.
    #[serde(default)]
    pub backend: BackendKind,
    /// Local backend: a folder in Hugging Face layout, or a Hub repo id (`REPO[@REVISION]`).
    #[serde(default = "default_model")]
    pub model: String,
    /// Local backend: several models the page can pick from and compare, the first is the
    /// default. Instead of `model:`; after loading it always lists `model` first.
    #[serde(default)]
    pub models: Vec<String>,
    /// Roboflow backend: the inference server's base URL.
    #[serde(default = "default_roboflow_url")]
    pub roboflow_url: String,
    /// Folder of the embedding cache; relative paths are relative to the config file's folder.
    #[serde(default = "default_embeddings_dir")]
    pub embeddings_dir: PathBuf,
    /// Frames per second to embed; absent = every frame.
    #[serde(default)]
    pub sample_fps: Option<f64>,
    /// Frames embedded per model call.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Local backend: what runs the image tower (the text tower always runs on candle).
    /// `image_engine`, its name before, is still accepted.
    #[serde(default, alias = "image_engine")]
    pub image_runtime: ImageRuntime,
    /// Local backend on ONNX Runtime: the image tower's number format. int8 is used only after
    /// it has been checked against fp32 on this machine, model and a sample of the video
    /// (stored in `embeddings_dir/precision`); a model that fails the check runs in fp32.
    #[serde(default)]
    pub precision: Precision,
    /// Local backend, SigLIP 2 NaFlex models: the most patches an image is cut into (its
    /// aspect ratio kept); absent = the checkpoint's (`max_num_patches` of its
    /// `preprocessor_config.json`, 256 in Google's). Models of a fixed input size ignore it.
    #[serde(default)]
    pub max_num_patches: Option<u32>,
    /// Skip frames whose model input differs from the last embedded frame's by less than this
    /// many grey levels (mean absolute difference), reusing its vector; absent = embed all.
    #[serde(default)]
    pub skip_similar: Option<f32>,
    /// When set, every request must carry this token (see `guard.rs`); for servers bound to
    /// other addresses than loopback. Never sent to the browser, never logged.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// More names (`host` or `host:port`) the server answers to besides its address.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Seconds of indexing work between saves of the cache file: what a crash can lose.
    #[serde(default = "default_checkpoint_secs")]
    pub checkpoint_secs: f64,
    /// Folders whose videos the page lists (uploads go to the first); relative paths are
    /// relative to the config file's folder. `video_path` is listed first in any case.
    #[serde(default)]
    pub library_dirs: Vec<PathBuf>,
    /// Largest upload accepted, in MiB.
    #[serde(default = "default_max_upload_mb")]
    pub max_upload_mb: u64,
    /// Videos indexed at the same time; the others wait in a queue.
    #[serde(default = "default_max_indexing_jobs")]
    pub max_indexing_jobs: usize,
    /// Longest clip the page may export, in seconds (each is re-encoded: it costs CPU).
    #[serde(default = "default_clip_max_s")]
    pub clip_max_s: f64,
    /// The web server indexes coarse to fine: the whole video once per `coarse_interval_s`
    /// first, then ever finer (the CLI's `index` runs straight unless `--progressive`).
    #[serde(default = "default_progressive")]
    pub progressive: bool,
    /// Seconds between the frames of the first coarse pass.
    #[serde(default = "default_coarse_interval_s")]
    pub coarse_interval_s: f64,
    /// Memory (MiB) a coarse-to-fine index may fill with frames a pass decodes on its way and
    /// keeps for the next pass, which then need not decode the video again. 0: none kept.
    #[serde(default = "default_progressive_memory_mb")]
    pub progressive_memory_mb: u64,
    /// Index every video of `video_path` and `library_dirs` with every model in the
    /// background (behind the videos people open), for the library search.
    #[serde(default)]
    pub index_library: bool,
}

/// What computes the local model's image embeddings. Both read the same safetensors and agree
/// with PyTorch's fp32 goldens (server/tests/it/clip_parity.rs), so their caches are interchangeable.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ImageRuntime {
    /// ONNX Runtime when its library loads (the faster: `cargo bench -p server --bench clip`),
    /// else candle.
    #[default]
    Auto,
    /// candle, pure Rust.
    Candle,
    /// ONNX Runtime, loaded from `ORT_DYLIB_PATH` (scripts/setup.sh installs it).
    Onnxruntime,
}

/// The image tower's number format (README: "Precision: int8").
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats: what the model was trained in, and what PyTorch computes.
    #[default]
    Fp32,
    /// 8-bit integer matrix products (weights per output channel, activations per batch),
    /// where the check against fp32 passes; else fp32.
    Int8,
    /// bfloat16, where the runtime has bf16 kernels for this CPU (it is refused where not).
    Bf16,
    /// The fastest precision that passes the check on this machine and model; fp32 until it has.
    Auto,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Int8 => "int8",
            Self::Bf16 => "bf16",
            Self::Auto => "auto",
        }
    }
}

/// When a video's display proxy is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DisplayProxy {
    /// As soon as the video is opened, where viewers look first.
    #[default]
    Eager,
    /// Once a frame of the video is first asked for.
    Lazy,
    /// Never: frames come from the video itself.
    Off,
}

impl<'de> Deserialize<'de> for DisplayProxy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Flag(bool),
            Word(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Flag(true) => Ok(Self::Eager),
            Written::Flag(false) => Ok(Self::Off),
            Written::Word(word) => match word.as_str() {
                "eager" => Ok(Self::Eager),
                "lazy" => Ok(Self::Lazy),
                "off" => Ok(Self::Off),
                other => Err(serde::de::Error::custom(format!(
                    "display_proxy must be eager, lazy or off (or true/false), not {other:?}"
                ))),
            },
        }
    }
}

/// Which embedder computes CLIP vectors.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// candle, in this process: no Python, no server.
    #[default]
    Local,
    /// A Roboflow inference server, as the old app used.
    Roboflow,
}

/// Most models one server offers (each is loaded when first picked and stays in memory).
pub const MAX_MODELS: usize = 8;

/// The Hub model used when `model:` is not set (its safetensors live on a PR revision; see
/// `embed::source`).
pub const DEFAULT_MODEL: &str = "openai/clip-vit-base-patch32";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}\n  Pass another file with --config PATH, or create {path} (see README.md).")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unknown key `{key}`{hint}\n  Valid keys: {valid}.")]
    UnknownKey {
        path: PathBuf,
        key: String,
        hint: String,
        valid: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// An environment variable that overrides a key holds something the key cannot.
    #[error("{variable} {message}")]
    Environment {
        variable: &'static str,
        message: String,
    },
}

impl Settings {
    /// Reads and checks a config file; relative `video_path`s are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut settings = Self::parse(&text, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if settings.video_path.is_relative() {
                settings.video_path = dir.join(&settings.video_path);
            }
            if settings.embeddings_dir.is_relative() {
                settings.embeddings_dir = dir.join(&settings.embeddings_dir);
            }
            for library in &mut settings.library_dirs {
                if library.is_relative() {
                    *library = dir.join(&*library);
                }
            }
            // A relative model folder that exists beside the config is that folder; anything
            // else stays as written (a Hub repo id, or a folder relative to the working dir).
            for model in &mut settings.models {
                let beside = dir.join(&*model);
                if Path::new(model.as_str()).is_relative() && beside.is_dir() {
                    *model = beside.to_string_lossy().into_owned();
                }
            }
            settings.model = settings.models[0].clone();
        }
        Ok(settings)
    }

    /// Parses config text; `path` only names the file in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        match &value {
            // An empty file means "all defaults".
            serde_yaml::Value::Null => return Ok(Self::default()),
            serde_yaml::Value::Mapping(map) => {
                for key in map.keys() {
                    let key = match key {
                        serde_yaml::Value::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    if !KNOWN_KEYS.contains(&key.as_str()) {
                        let hint = nearest_key(&key)
                            .map(|k| format!(" (did you mean `{k}`?)"))
                            .unwrap_or_default();
                        return Err(ConfigError::UnknownKey {
                            path: path.to_path_buf(),
                            key,
                            hint,
                            valid: KNOWN_KEYS.join(", "),
                        });
                    }
                }
            }
            _ => {
                return Err(invalid(
                    "the config must be a mapping of `key: value` lines".into(),
                ))
            }
        }
        let has = |key: &str| value.get(key).is_some();
        if has("model") && has("models") {
            return Err(invalid(
                "give either `model:` (one model) or `models:` (a list, the first is the default), not both".into(),
            ));
        }
        // Parse the text again (not the Value) so type errors keep their line and column.
        let mut settings: Self = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if has("models") && settings.models.is_empty() {
            return Err(invalid(
                "models: lists no model; list at least one folder or Hugging Face repo id".into(),
            ));
        }
        if settings.models.is_empty() {
            settings.models = vec![settings.model.clone()];
        }
        settings.model = settings.models[0].clone();
        settings.check().map_err(invalid)?;
        Ok(settings)
    }

    /// Uses `model` alone (the CLI's `--model`, `CLIP_INVESTIGATOR_MODEL`).
    pub fn set_model(&mut self, model: String) {
        self.models = vec![model.clone()];
        self.model = model;
    }

    /// Environment variables that users expect to win over the file.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Ok(key) = std::env::var("ROBOFLOW_API_KEY") {
            self.roboflow_api_key = key;
        }
        if let Ok(token) = std::env::var("CLIP_INVESTIGATOR_AUTH_TOKEN") {
            self.auth_token = Some(token).filter(|t| !t.is_empty());
        }
        if let Ok(video) = std::env::var("CLIP_INVESTIGATOR_VIDEO") {
            self.video_path = PathBuf::from(video);
        }
        if let Ok(model) = std::env::var("CLIP_INVESTIGATOR_MODEL") {
            self.set_model(model);
        }
        if let Ok(dir) = std::env::var("CLIP_INVESTIGATOR_EMBEDDINGS") {
            self.embeddings_dir = PathBuf::from(dir);
        }
        if let Ok(addr) = std::env::var("CLIP_INVESTIGATOR_ADDR") {
            self.address = addr.parse().map_err(|_| ConfigError::Environment {
                variable: "CLIP_INVESTIGATOR_ADDR",
                message: format!("must be IP:PORT such as 127.0.0.1:3000, not {addr:?}"),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, Path::new("config.yaml"))
    }

    #[test]
    fn the_old_apps_config_works_unchanged() {
        let settings = parse(
            "roboflow_api_key: \"\"\nvideo_path: \"data/sample.mp4\"\nCLIP:\n  - wall\n  - tile wall\n",
        )
        .unwrap();
        assert_eq!(settings.video_path, PathBuf::from("data/sample.mp4"));
        assert_eq!(
            settings.prompts,
            vec!["wall".to_string(), "tile wall".to_string()]
        );
        assert_eq!(settings.address, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(settings.jpeg_quality, 80);
    }

    #[test]
    fn new_settings_are_optional_and_read() {
        let settings = parse(
            "video_path: a.mkv\naddress: 127.0.0.1:4000\njpeg_quality: 90\ndisplay_width: 0\n",
        )
        .unwrap();
        assert_eq!(settings.address.port(), 4000);
        assert_eq!(settings.jpeg_quality, 90);
        assert_eq!(settings.display_width, 0);
        assert_eq!(settings.max_decoders, 24);
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn the_display_proxy_is_eager_lazy_or_off_and_the_old_flags_still_read() {
        let read = |text: &str| parse(text).map(|s| s.display_proxy);
        assert_eq!(read("").unwrap(), DisplayProxy::Eager);
        assert_eq!(read("display_proxy: eager\n").unwrap(), DisplayProxy::Eager);
        assert_eq!(read("display_proxy: lazy\n").unwrap(), DisplayProxy::Lazy);
        assert_eq!(read("display_proxy: off\n").unwrap(), DisplayProxy::Off);
        assert_eq!(read("display_proxy: true\n").unwrap(), DisplayProxy::Eager);
        assert_eq!(read("display_proxy: false\n").unwrap(), DisplayProxy::Off);
        let error = read("display_proxy: sometimes\n").unwrap_err().to_string();
        assert!(error.contains("eager, lazy or off"), "{error}");
    }

    #[test]
    fn one_model_or_a_list_of_models_the_first_the_default() {
        let one = parse("model: my/clip\n").unwrap();
        assert_eq!(
            (one.model.as_str(), one.models.clone()),
            ("my/clip", vec!["my/clip".to_string()])
        );
        assert_eq!(parse("").unwrap().models, vec![DEFAULT_MODEL.to_string()]);
        let list = parse("models:\n  - base\n  - tuned\n").unwrap();
        assert_eq!(list.model, "base");
        assert_eq!(list.models, vec!["base".to_string(), "tuned".to_string()]);
        for (bad, says) in [
            ("model: a\nmodels: [b]\n", "not both"),
            ("models: []\n", "lists no model"),
            ("models: [a, b, a]\n", "\"a\" twice"),
            ("models: [a, \" \"]\n", "must name a folder"),
            ("backend: roboflow\nmodels: [a, b]\n", "backend: local"),
        ] {
            let message = parse(bad).unwrap_err().to_string();
            assert!(message.contains(says), "{bad:?}: {message}");
        }
        let mut settings = list;
        settings.set_model("other".into());
        assert_eq!(settings.models, vec!["other".to_string()]);
    }

    #[test]
    fn an_unknown_key_names_the_nearest_valid_one() {
        let message = parse("vidoe_path: a.mp4\n").unwrap_err().to_string();
        assert!(message.contains("unknown key `vidoe_path`"), "{message}");
        assert!(message.contains("did you mean `video_path`?"), "{message}");
        let message = parse("clip:\n  - wall\n").unwrap_err().to_string();
        assert!(message.contains("did you mean `CLIP`?"), "{message}");
        let message = parse("something_else: 1\n").unwrap_err().to_string();
        assert!(
            message.contains("unknown key `something_else`") && !message.contains("did you mean"),
            "{message}"
        );
    }

    #[test]
    fn a_wrong_type_is_reported_with_its_place() {
        let message = parse("video_path: a.mp4\njpeg_quality: high\n")
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("jpeg_quality") && message.contains("line 2"),
            "{message}"
        );
        let message = parse("CLIP: wall\n").unwrap_err().to_string();
        assert!(message.contains("CLIP"), "{message}");
        let message = parse("- a\n- b\n").unwrap_err().to_string();
        assert!(message.contains("mapping"), "{message}");
        let message = parse("jpeg_quality: 0\n").unwrap_err().to_string();
        assert!(message.contains("from 1 to 100"), "{message}");
    }

    #[test]
    fn relative_video_paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "video_path: clips/a.mp4\n").unwrap();
        assert_eq!(
            Settings::load(&path).unwrap().video_path,
            dir.path().join("clips/a.mp4")
        );
        let missing = Settings::load(&dir.path().join("nope.yaml"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("--config"), "{missing}");
    }

    /// Mutation fuzzing of the config parser: every mutant of a full config parses or gets an
    /// error; none panics. Plus inputs that break naive parsers.
    #[test]
    fn mutated_configs_parse_or_are_refused() {
        let valid = "roboflow_api_key: \"k\"\nvideo_path: \"data/sample.mp4\"\nCLIP:\n  - wall\n  - tile wall\naddress: 127.0.0.1:3000\njpeg_quality: 80\nsample_fps: 2.5\nbatch_size: 8\nimage_engine: auto\nskip_similar: 1.0\nallowed_hosts: [lab.local]\ncheckpoint_secs: 5\n";
        assert!(parse(valid).is_ok());
        let mut state = 0x51_7CC1_B727_220Au64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let alphabet = b" \n\t:-[]{}\"'#&*!|>%@`,?0123456789.eE+abcxyz\\";
        let mut refused = 0;
        for round in 0..20_000 {
            let mut bytes = valid.as_bytes().to_vec();
            for _ in 0..1 + next() % 6 {
                let at = (next() % bytes.len().max(1) as u64) as usize;
                match next() % 3 {
                    0 if !bytes.is_empty() => {
                        bytes.remove(at.min(bytes.len() - 1));
                    }
                    1 => bytes.insert(at, alphabet[(next() % alphabet.len() as u64) as usize]),
                    _ => bytes.insert(at, next() as u8),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            match std::panic::catch_unwind(|| parse(&text)) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    assert!(!e.to_string().is_empty());
                    refused += 1;
                }
                Err(_) => panic!("round {round}: the parser panicked on {text:?}"),
            }
        }
        assert!(refused > 1_000, "{refused}");
        let deep = "[".repeat(100_000);
        for text in [
            deep.as_str(),
            "CLIP: &a [*a, *a]",
            "a: !!binary AAAA",
            "\u{feff}",
            "---\n---\n",
            "CLIP: 1e999999",
        ] {
            assert!(
                std::panic::catch_unwind(|| parse(text)).is_ok(),
                "{text:.40}"
            );
        }
    }
}
