//! `config.yaml`: the old app's keys (`roboflow_api_key`, `video_path`, `CLIP`) plus optional
//! new settings with defaults. Unknown keys are errors, so a typo is never silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every top-level key the file may have.
pub const KNOWN_KEYS: &[&str] = &[
    "roboflow_api_key",
    "video_path",
    "CLIP",
    "address",
    "jpeg_quality",
    "display_width",
    "max_decoders",
    "frame_cache",
    "backend",
    "model",
    "models",
    "roboflow_url",
    "embeddings_dir",
    "sample_fps",
    "batch_size",
    "image_engine",
    "skip_similar",
    "auth_token",
    "allowed_hosts",
    "checkpoint_secs",
    "library_dirs",
    "max_upload_mb",
    "max_indexing_jobs",
    "clip_max_s",
    "progressive",
    "coarse_interval_s",
    "progressive_memory_mb",
];

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
    #[serde(default)]
    pub image_engine: ImageEngine,
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
}

fn default_progressive_memory_mb() -> u64 {
    512
}

fn default_progressive() -> bool {
    true
}

fn default_coarse_interval_s() -> f64 {
    1.0
}

fn default_clip_max_s() -> f64 {
    300.0
}

fn default_max_upload_mb() -> u64 {
    2048
}
fn default_max_indexing_jobs() -> usize {
    1
}

fn default_checkpoint_secs() -> f64 {
    5.0
}

/// What computes the local model's image embeddings. Both read the same safetensors and agree
/// with PyTorch's fp32 goldens (server/tests/it/clip_parity.rs), so their caches are interchangeable.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ImageEngine {
    /// ONNX Runtime when its library loads (the faster: `cargo bench -p server --bench clip`),
    /// else candle.
    #[default]
    Auto,
    /// candle, pure Rust.
    Candle,
    /// ONNX Runtime, loaded from `ORT_DYLIB_PATH` (scripts/setup.sh installs it).
    Onnxruntime,
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

fn default_video_path() -> PathBuf {
    PathBuf::from("data/sample.mp4")
}
fn default_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000))
}
fn default_jpeg_quality() -> u8 {
    80
}
fn default_display_width() -> u32 {
    1280
}
fn default_max_decoders() -> usize {
    8
}
fn default_frame_cache() -> usize {
    64
}
fn default_model() -> String {
    DEFAULT_MODEL.into()
}
fn default_roboflow_url() -> String {
    "http://localhost:9001".into()
}
fn default_embeddings_dir() -> PathBuf {
    PathBuf::from("embeddings")
}
fn default_batch_size() -> usize {
    8
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            roboflow_api_key: String::new(),
            video_path: default_video_path(),
            prompts: Vec::new(),
            address: default_address(),
            jpeg_quality: default_jpeg_quality(),
            display_width: default_display_width(),
            max_decoders: default_max_decoders(),
            frame_cache: default_frame_cache(),
            backend: BackendKind::default(),
            model: default_model(),
            models: vec![default_model()],
            roboflow_url: default_roboflow_url(),
            embeddings_dir: default_embeddings_dir(),
            sample_fps: None,
            batch_size: default_batch_size(),
            image_engine: ImageEngine::default(),
            skip_similar: None,
            auth_token: None,
            allowed_hosts: Vec::new(),
            checkpoint_secs: default_checkpoint_secs(),
            library_dirs: Vec::new(),
            max_upload_mb: default_max_upload_mb(),
            max_indexing_jobs: default_max_indexing_jobs(),
            clip_max_s: default_clip_max_s(),
            progressive: default_progressive(),
            coarse_interval_s: default_coarse_interval_s(),
            progressive_memory_mb: default_progressive_memory_mb(),
        }
    }
}

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

    fn check(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.jpeg_quality) {
            return Err(format!(
                "jpeg_quality must be from 1 to 100, not {}",
                self.jpeg_quality
            ));
        }
        if self.display_width != 0 && self.display_width < 16 {
            return Err(format!(
                "display_width must be 0 (full width) or at least 16, not {}",
                self.display_width
            ));
        }
        if self.max_decoders == 0 {
            return Err("max_decoders must be at least 1".into());
        }
        if let Some(fps) = self.sample_fps {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(format!(
                    "sample_fps must be a positive number of frames per second, not {fps}"
                ));
            }
        }
        if !(1..=256).contains(&self.batch_size) {
            return Err(format!(
                "batch_size must be from 1 to 256, not {}",
                self.batch_size
            ));
        }
        if self.max_indexing_jobs == 0 {
            return Err("max_indexing_jobs must be at least 1".into());
        }
        if !(self.clip_max_s.is_finite() && self.clip_max_s > 0.0) {
            return Err(format!(
                "clip_max_s must be a positive number of seconds, not {}",
                self.clip_max_s
            ));
        }
        if !(self.coarse_interval_s.is_finite() && self.coarse_interval_s > 0.0) {
            return Err(format!(
                "coarse_interval_s must be a positive number of seconds, not {}",
                self.coarse_interval_s
            ));
        }
        if self.max_upload_mb == 0 {
            return Err("max_upload_mb must be at least 1 (MiB)".into());
        }
        if self.models.iter().any(|m| m.trim().is_empty()) || self.model.trim().is_empty() {
            return Err("model must name a folder or a Hugging Face repo id".into());
        }
        if self.models.len() > MAX_MODELS {
            return Err(format!(
                "models: lists {} models; at most {MAX_MODELS}",
                self.models.len()
            ));
        }
        if let Some(twice) = self
            .models
            .iter()
            .enumerate()
            .find(|(i, m)| self.models[..*i].contains(m))
        {
            return Err(format!("models: lists {:?} twice", twice.1));
        }
        if self.models.len() > 1 && self.backend == BackendKind::Roboflow {
            return Err(
                "models: several models need `backend: local` (a Roboflow server has one model)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Uses `model` alone (the CLI's `--model`, `CLIP_INVESTIGATOR_MODEL`).
    pub fn set_model(&mut self, model: String) {
        self.models = vec![model.clone()];
        self.model = model;
    }

    /// Environment variables that users expect to win over the file.
    pub fn apply_env(&mut self) -> Result<(), String> {
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
            self.address = addr.parse().map_err(|_| {
                format!(
                    "CLIP_INVESTIGATOR_ADDR must be IP:PORT such as 127.0.0.1:3000, not {addr:?}"
                )
            })?;
        }
        Ok(())
    }
}

/// The known key closest to a misspelt one, if any is close enough to be a likely typo.
fn nearest_key(key: &str) -> Option<&'static str> {
    let lower = key.to_lowercase();
    KNOWN_KEYS
        .iter()
        .map(|known| (edit_distance(&lower, &known.to_lowercase()), *known))
        .filter(|(distance, known)| *distance <= (known.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
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
        assert_eq!(settings.max_decoders, 8);
        assert_eq!(parse("").unwrap(), Settings::default());
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

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
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
