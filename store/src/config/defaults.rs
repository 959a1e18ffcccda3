//! What a config file that leaves a key out gets.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{BackendKind, ImageRuntime, Precision, Settings, DEFAULT_MODEL};

pub(super) fn default_progressive_memory_mb() -> u64 {
    512
}

pub(super) fn default_progressive() -> bool {
    true
}

pub(super) fn default_coarse_interval_s() -> f64 {
    1.0
}

pub(super) fn default_clip_max_s() -> f64 {
    300.0
}

pub(super) fn default_max_upload_mb() -> u64 {
    2048
}
pub(super) fn default_max_indexing_jobs() -> usize {
    1
}

pub(super) fn default_checkpoint_secs() -> f64 {
    5.0
}

pub(super) fn default_video_path() -> PathBuf {
    PathBuf::from("data/sample.mp4")
}
pub(super) fn default_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3000))
}
pub(super) fn default_jpeg_quality() -> u8 {
    80
}
pub(super) fn default_display_width() -> u32 {
    1280
}
pub(super) fn default_max_decoders() -> usize {
    24
}
pub(super) fn default_frame_cache() -> usize {
    4096
}
pub(super) fn default_frame_cache_mb() -> usize {
    256
}
pub(super) fn default_model() -> String {
    DEFAULT_MODEL.into()
}
pub(super) fn default_roboflow_url() -> String {
    "http://localhost:9001".into()
}
pub(super) fn default_embeddings_dir() -> PathBuf {
    PathBuf::from("embeddings")
}
pub(super) fn default_batch_size() -> usize {
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
            frame_cache_mb: default_frame_cache_mb(),
            display_proxy: super::DisplayProxy::Eager,
            backend: BackendKind::default(),
            model: default_model(),
            models: vec![default_model()],
            roboflow_url: default_roboflow_url(),
            embeddings_dir: default_embeddings_dir(),
            sample_fps: None,
            batch_size: default_batch_size(),
            image_runtime: ImageRuntime::default(),
            precision: Precision::default(),
            max_num_patches: None,
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
            index_library: false,
        }
    }
}
