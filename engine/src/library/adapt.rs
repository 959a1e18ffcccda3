//! Adapted prompts for the page: one background job per (video, model, prompt), the adapters
//! stored for a video, their scores for the chart, and retraining when the labels change.
//!
//! Invariants: a job trains on the video's cache as it is when the job starts (a snapshot if
//! the index is still running: indexing is never blocked behind a training), and stores the
//! adapter atomically before it says "done"; the scores a chart gets are computed from the
//! same snapshot of the cache as its cosine scores (aligned frame for frame), and kept until
//! the cache grows or the adapter changes; an adapter whose labels changed is "stale" until
//! retrained, and a single-video adapter is retrained in the background after every label
//! edit of its video.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use investigator_core::adapt::{AdaptRequest, AdaptStatus, AdaptedScores, AdapterInfo};
use investigator_core::labels::Labels;
use investigator_core::types::IndexState;
use store::cache::{EmbeddingFile, ModelKey, VideoFingerprint};

use super::{Library, LibraryError, Session};
use crate::adapt::{
    adapt, labels_fingerprint, AdaptError, Adapter, AdapterFileError, AdapterStore, LabelledVideo,
    Model,
};
use crate::indexing::IndexService;
use crate::labels::LabelStore;
use crate::sync::{lock, read};

/// Why the page's adapt request cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum AdaptWebError {
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// The model is loading, or failed to load; or the video is not indexed yet.
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Adapt(#[from] AdaptError),
    #[error(transparent)]
    File(#[from] AdapterFileError),
    #[error("{0}")]
    Labels(String),
}

/// The key of a job: video id, model place, prompt.
type JobKey = (String, usize, String);

/// The library's adapt jobs and the adapters' chart scores.
#[derive(Default)]
pub struct AdaptJobs {
    jobs: Mutex<HashMap<JobKey, Arc<Mutex<AdaptStatus>>>>,
    /// Chart scores by (video id, model place, adapter id): the cache rows they were made
    /// from, the adapter file's time, and the scores.
    scores: Mutex<HashMap<(String, usize, String), (usize, SystemTime, AdaptedScores)>>,
    /// Trainings run one at a time: each uses every core for a second or two.
    running: Mutex<()>,
}

/// A video's content key, as adapters list the videos they were trained on.
pub fn video_key(video: &VideoFingerprint) -> String {
    format!("{}-{}", video.short(), video.size)
}

/// The labels of the video with content `key` (its labels file beside the caches).
fn labels_of_key(cache_dir: &Path, key: &str) -> Labels {
    let path = cache_dir.join(format!("{key}.labels.csv"));
    let store = LabelStore::at(&path);
    store.load(u64::MAX).unwrap_or_default()
}

/// Whether the labels `adapter` learnt from have changed since.
pub fn is_stale(adapter: &Adapter, cache_dir: &Path) -> bool {
    let labels: Vec<(String, Labels)> = adapter
        .videos
        .iter()
        .map(|key| (key.clone(), labels_of_key(cache_dir, key)))
        .collect();
    let now = labels_fingerprint(
        labels.iter().map(|(k, l)| (k.as_str(), l)),
        adapter.prompt(),
    );
    now != adapter.report.labels_fingerprint
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

impl Library {
    fn adapter_store(&self) -> AdapterStore {
        AdapterStore::new(&self.index_options.cache_dir)
    }

    /// The model key of the model at `place` (loading it if it is not yet: a restarted
    /// server's page asks for its adapters before the model has loaded).
    fn model_key(&self, place: usize) -> Result<ModelKey, AdaptWebError> {
        let embedder = self.models[place]
            .model
            .get()
            .map_err(|e| AdaptWebError::NotReady(e.to_string()))?;
        Ok(ModelKey::from(&embedder.identity()))
    }

    /// Starts adapting `request.prompt` on `video`'s labels with `model` (or says how far the
    /// job running for it is).
    pub fn adapt_start(
        self: &Arc<Self>,
        video: &str,
        model: Option<&str>,
        request: AdaptRequest,
    ) -> Result<AdaptStatus, AdaptWebError> {
        let place = self.model_place(model)?;
        let session = self.session(video)?;
        let index = self.index(&session, model)?;
        let key: JobKey = (video.to_string(), place, request.prompt.clone());
        let status = {
            let mut jobs = lock(&self.adapt.jobs);
            if let Some(job) = jobs.get(&key) {
                if matches!(*lock(job), AdaptStatus::Running { .. }) {
                    return Ok(lock(job).clone());
                }
            }
            let status = Arc::new(Mutex::new(AdaptStatus::Running {
                phase: "waiting to start".into(),
                fraction: 0.0,
            }));
            jobs.insert(key, Arc::clone(&status));
            status
        };
        let library = Arc::clone(self);
        let id = video.to_string();
        let job = Arc::clone(&status);
        std::thread::Builder::new()
            .name("adapt".into())
            .spawn(move || {
                let result = library.run_adapt(&session, &index, &id, &request, &job);
                let changed_meanwhile = matches!(&result, Ok(info) if info.stale);
                *lock(&job) = match result {
                    Ok(info) => AdaptStatus::Done(info),
                    Err(error) => {
                        tracing::warn!("adapting {:?} failed: {error}", request.prompt);
                        AdaptStatus::Failed(error.to_string())
                    }
                };
                // Labels edited while it trained: once more, on the labels as they are now.
                if changed_meanwhile {
                    library.retrain_stale(&id);
                }
            })
            .map_err(|e| AdaptWebError::NotReady(format!("cannot start the job: {e}")))?;
        let answer = lock(&status).clone();
        Ok(answer)
    }

    /// One job: the cache (a snapshot while indexing runs), the labels, the training, the
    /// store.
    fn run_adapt(
        &self,
        session: &Session,
        index: &IndexService,
        video: &str,
        request: &AdaptRequest,
        status: &Mutex<AdaptStatus>,
    ) -> Result<AdapterInfo, AdaptWebError> {
        let _one_at_a_time = lock(&self.adapt.running);
        let embedder = index
            .ready_embedder()
            .map_err(|e| AdaptWebError::NotReady(e.0))?;
        let text = index
            .embed_texts(embedder.as_ref(), std::slice::from_ref(&request.prompt))
            .map_err(|e| AdaptWebError::NotReady(e.to_string()))?
            .remove(0);
        let (labels_store, frames) = self.labels(session)?;
        let labels = labels_store
            .load(frames)
            .map_err(|e| AdaptWebError::Labels(e.public()))?;
        let store = index.embeddings().ok_or_else(|| {
            AdaptWebError::NotReady(
                "this video has embedded no frame yet: wait for its index".into(),
            )
        })?;
        let planned = index.status().total as usize;
        let done = index.status().state == IndexState::Done;
        // A finished index is read in place; a running one is copied, so indexing goes on.
        let snapshot: Option<EmbeddingFile> = (!done).then(|| read(store).clone());
        let guard = done.then(|| read(store));
        let file: &EmbeddingFile = match (&snapshot, &guard) {
            (Some(file), _) => file,
            (None, Some(guard)) => guard,
            _ => unreachable!("one of the two is set"),
        };
        let identity = embedder.identity();
        let model = Model {
            key: ModelKey::from(&identity),
            name: identity.name.clone(),
            text,
            logit_scale: f64::from(embedder.logit_scale()),
        };
        let videos = [LabelledVideo {
            id: video.to_string(),
            key: video_key(&file.header.video),
            file,
            labels: &labels,
            planned,
        }];
        let progress = |phase: &str, fraction: f64| {
            *lock(status) = AdaptStatus::Running {
                phase: phase.to_string(),
                fraction,
            };
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let (adapter, _) = adapt(&videos, &model, request, threads, &progress)?;
        drop(guard);
        self.adapter_store().save(&adapter)?;
        let stale = is_stale(&adapter, &self.index_options.cache_dir);
        Ok(AdapterInfo {
            report: adapter.report,
            stale,
        })
    }

    /// How far the job for `prompt` on `video` with `model` is; a stored adapter of it counts
    /// as done.
    pub fn adapt_status(
        &self,
        video: &str,
        model: Option<&str>,
        prompt: &str,
    ) -> Result<AdaptStatus, AdaptWebError> {
        let place = self.model_place(model)?;
        let key: JobKey = (video.to_string(), place, prompt.to_string());
        if let Some(job) = lock(&self.adapt.jobs).get(&key) {
            let status = lock(job).clone();
            return Ok(match status {
                // A later label edit may have made it stale.
                AdaptStatus::Done(info) => {
                    AdaptStatus::Done(self.refresh_info(video, model, info)?)
                }
                other => other,
            });
        }
        Ok(self
            .adapters(video, model)?
            .into_iter()
            .find(|a| a.report.prompt == prompt)
            .map_or(AdaptStatus::Idle, AdaptStatus::Done))
    }

    fn refresh_info(
        &self,
        video: &str,
        model: Option<&str>,
        info: AdapterInfo,
    ) -> Result<AdapterInfo, AdaptWebError> {
        Ok(self
            .adapters(video, model)?
            .into_iter()
            .find(|a| a.report.id == info.report.id)
            .unwrap_or(info))
    }

    /// The stored adapters of `model` trained on `video` (alone or with others), each with
    /// whether its labels changed since. Damaged files are logged and left out.
    pub fn adapters(
        &self,
        video: &str,
        model: Option<&str>,
    ) -> Result<Vec<AdapterInfo>, AdaptWebError> {
        let place = self.model_place(model)?;
        let session = self.session(video)?;
        let key = self.model_key(place)?;
        let content = self.content_key(&session)?;
        let cache_dir = &self.index_options.cache_dir;
        let mut out = Vec::new();
        for adapter in self.adapter_store().list(&key) {
            match adapter {
                Ok(adapter) if adapter.videos.contains(&content) => {
                    let stale = is_stale(&adapter, cache_dir);
                    out.push(AdapterInfo {
                        report: adapter.report,
                        stale,
                    });
                }
                Ok(_) => {}
                Err(error) => tracing::warn!("{error}"),
            }
        }
        Ok(out)
    }

    /// The content key of `session`'s video.
    fn content_key(&self, session: &Session) -> Result<String, AdaptWebError> {
        let fingerprint = self
            .fingerprint(&session.path)
            .ok_or_else(|| LibraryError::CannotOpen("cannot read the video".into()))?;
        Ok(video_key(&fingerprint))
    }

    /// The chart scores of the adapters `ids` of `model` on `file` (the snapshot the cosine
    /// scores came from). Unknown or damaged ids are left out (and logged).
    pub fn adapted_scores(
        &self,
        video: &str,
        place: usize,
        key: &ModelKey,
        file: &EmbeddingFile,
        ids: &[String],
    ) -> Vec<AdaptedScores> {
        let store = self.adapter_store();
        let cache_dir = &self.index_options.cache_dir;
        let mut out = Vec::new();
        for id in ids {
            let path: PathBuf = store.path(key, id);
            let time = modified(&path);
            let cache_key = (video.to_string(), place, id.clone());
            if let Some((rows, when, scores)) = lock(&self.adapt.scores).get(&cache_key) {
                if *rows == file.frames.len() && *when == time {
                    out.push(scores.clone());
                    continue;
                }
            }
            match store.load(key, id) {
                Ok(adapter) => {
                    let scores = adapter.chart_scores(file, is_stale(&adapter, cache_dir));
                    lock(&self.adapt.scores)
                        .insert(cache_key, (file.frames.len(), time, scores.clone()));
                    out.push(scores);
                }
                Err(error) => tracing::warn!("adapter {id}: {error}"),
            }
        }
        out
    }

    /// After a label edit on `video`: retrains, in the background, every single-video adapter
    /// of it whose labels changed (each model whose index of it is open).
    pub fn retrain_stale(self: &Arc<Self>, video: &str) {
        let Ok(session) = self.session(video) else {
            return;
        };
        let Ok(content) = self.content_key(&session) else {
            return;
        };
        for place in 0..self.models.len() {
            if session.index_of(place).is_none() {
                continue;
            }
            let Ok(key) = self.model_key(place) else {
                continue;
            };
            for adapter in self.adapter_store().list(&key).into_iter().flatten() {
                if adapter.videos != [content.clone()]
                    || !is_stale(&adapter, &self.index_options.cache_dir)
                {
                    continue;
                }
                let request = AdaptRequest {
                    prompt: adapter.report.prompt.clone(),
                    method: adapter.report.method,
                    from: adapter.report.from,
                    folds: None,
                    hold_out_video: None,
                };
                let model = (place > 0).then(|| self.models[place].choice.id.clone());
                if let Err(error) = self.adapt_start(video, model.as_deref(), request) {
                    tracing::warn!("retraining the adapter of {:?}: {error}", adapter.prompt());
                }
            }
        }
    }
}
