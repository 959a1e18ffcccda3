//! The web server's indexing service: loads the model off the async runtime, runs the one
//! indexing job of the open video in the background, and answers scores from the embeddings
//! while they grow. However many tabs ask, there is one job per video.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use app::scores::fill_radius;
use app::types::{IndexState, IndexStatus, PromptScores, ScoreSeries};

use crate::cache::{EmbeddingFile, TextCache};
use crate::embed::Embedder;
use crate::engine::OpenVideo;
use crate::index::{index_into, load_cache, IndexOptions, Progress, VideoToIndex};

pub struct Indexer {
    options: IndexOptions,
    progress: Progress,
    embedder: OnceLock<Arc<dyn Embedder>>,
    /// The embeddings of the open video, once the job has loaded or started them.
    embeddings: OnceLock<Arc<RwLock<EmbeddingFile>>>,
    fill_radius: OnceLock<u64>,
    texts: Mutex<Option<TextCache>>,
    cancel: AtomicBool,
    finished: AtomicBool,
}

impl Indexer {
    /// Starts loading the model and then indexing `video` on a background thread.
    /// `load_model` runs on that thread (it may read hundreds of MB or download).
    pub fn start(
        video: Result<Arc<OpenVideo>, String>,
        options: IndexOptions,
        load_model: impl FnOnce() -> Result<Arc<dyn Embedder>, String> + Send + 'static,
    ) -> Arc<Self> {
        let indexer = Arc::new(Self {
            options,
            progress: Progress::default(),
            embedder: OnceLock::new(),
            embeddings: OnceLock::new(),
            fill_radius: OnceLock::new(),
            texts: Mutex::new(None),
            cancel: AtomicBool::new(false),
            finished: AtomicBool::new(false),
        });
        let worker = Arc::clone(&indexer);
        let spawned = std::thread::Builder::new()
            .name("clip-index".into())
            .spawn(move || {
                let result = worker.run(video, load_model);
                worker
                    .finished
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                if let Err(message) = result {
                    tracing::warn!("indexing: {message}");
                    worker.progress.update(|s| {
                        s.state = IndexState::Failed;
                        s.message = Some(message);
                    });
                }
            });
        if let Err(e) = spawned {
            indexer.progress.update(|s| {
                s.state = IndexState::Failed;
                s.message = Some(format!("cannot start indexing: {e}"));
            });
        }
        indexer
    }

    fn run(
        &self,
        video: Result<Arc<OpenVideo>, String>,
        load_model: impl FnOnce() -> Result<Arc<dyn Embedder>, String>,
    ) -> Result<(), String> {
        self.progress
            .update(|s| s.message = Some("loading the CLIP model…".into()));
        // The full error names folders on this machine: it goes to the log, not the page.
        let embedder = load_model().map_err(|e| {
            tracing::error!("{e}");
            "No CLIP model is loaded, so there are no similarity curves (the video still plays). \
             The server's log says which files to put where: config.json, model.safetensors and \
             tokenizer.json in one folder, named by `model:` in config.yaml or --model."
                .to_string()
        })?;
        let identity = embedder.identity();
        let _ = self.embedder.set(Arc::clone(&embedder));
        self.progress.update(|s| {
            s.model = Some(identity.name.clone());
            s.message = None;
        });
        let video = video?;
        // The cache is keyed by the exact frame count: wait for the background frame scan.
        let meta = loop {
            let meta = video.metadata();
            if meta.exact_count {
                break meta;
            }
            if video.index_failed() {
                return Err("the video's frames could not be counted".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let to_index = VideoToIndex::with_metadata(video.path(), meta.clone())?;
        let _ = self
            .fill_radius
            .set(fill_radius(meta.fps, self.options.sample_fps));
        let (cache_path, file, problem) = load_cache(&to_index, embedder.as_ref(), &self.options);
        let store = Arc::clone(self.embeddings.get_or_init(|| Arc::new(RwLock::new(file))));
        let report = index_into(
            &to_index,
            embedder.as_ref(),
            &self.options,
            &self.progress,
            &self.cancel,
            &cache_path,
            &store,
            problem,
        )
        .map_err(|e| crate::engine::public_message(&e.to_string(), video.path()))?;
        tracing::info!(
            resumed = report.resumed,
            embedded = report.embedded,
            seconds = format!("{:.1}", report.seconds),
            "indexed {}",
            cache_path.display()
        );
        self.progress.update(|s| {
            s.state = IndexState::Done;
            s.eta_s = None;
        });
        Ok(())
    }

    pub fn status(&self) -> IndexStatus {
        self.progress.snapshot()
    }

    /// Stops the job at its next batch and waits up to `wait` for it to save its frames.
    pub fn stop(&self, wait: Duration) {
        self.cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        while !self.finished.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < wait
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Cosine scores of the indexed frames. Blocking: embeds prompts not yet cached.
    pub fn scores_blocking(&self, prompts: &[String]) -> Result<ScoreSeries, String> {
        let Some(embedder) = self.embedder.get() else {
            let status = self.status();
            return Err(status
                .message
                .unwrap_or_else(|| "the CLIP model is still loading".into()));
        };
        let vectors = {
            let mut texts = self.texts.lock().unwrap_or_else(|e| e.into_inner());
            let cache = texts.get_or_insert_with(|| {
                TextCache::open(&self.options.cache_dir, &embedder.identity())
            });
            cache
                .embed(embedder.as_ref(), prompts)
                .map_err(|e| e.to_string())?
        };
        let (covered, series) = match (self.embeddings.get(), self.fill_radius.get()) {
            (Some(store), Some(&radius)) => {
                let file = store.read().unwrap_or_else(|e| e.into_inner());
                let complete = self.status().state == IndexState::Done;
                crate::search::frame_scores(&file, &vectors, radius, complete)
            }
            _ => (0, vec![Vec::new(); prompts.len()]),
        };
        Ok(ScoreSeries {
            covered,
            logit_scale: embedder.logit_scale(),
            prompts: prompts
                .iter()
                .zip(series)
                .map(|(prompt, values)| PromptScores {
                    prompt: prompt.clone(),
                    values,
                    truncated: embedder.is_truncated(prompt),
                })
                .collect(),
        })
    }
}
