//! The checks a parsed config must pass: each refusal says which key and why.

use super::{BackendKind, Settings, MAX_MODELS};

impl Settings {
    pub(super) fn check(&self) -> Result<(), String> {
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
}
