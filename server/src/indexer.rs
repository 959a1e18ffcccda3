//! The web server's indexing service: loads the model off the async runtime, runs the one
//! indexing job of the open video in the background, and answers scores from the embeddings
//! while they grow. However many tabs ask, there is one job per video.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration;

use app::scores::fill_radius;
use app::types::{IndexState, IndexStatus, PromptScores, ScoreSeries, SearchHit};

use crate::cache::{EmbeddingFile, ModelKey, TextCache};
use crate::embed::{EmbedError, Embedder, PreparedImage};
use crate::engine::OpenVideo;
use crate::index::{index_into, load_cache, IndexOptions, Progress, VideoToIndex};

/// How many videos may be indexed at once (`max_indexing_jobs`); the other jobs wait here, so
/// that opening several videos does not split two cores between them.
pub struct IndexQueue {
    running: Mutex<usize>,
    turn: Condvar,
    limit: usize,
}

impl IndexQueue {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(0),
            turn: Condvar::new(),
            limit: limit.max(1),
        })
    }

    /// Waits for a free place; `None` if `cancel` was set while waiting.
    fn enter<'a>(&'a self, cancel: &AtomicBool) -> Option<QueueTurn<'a>> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            if *running < self.limit {
                *running += 1;
                return Some(QueueTurn(self));
            }
            running = self
                .turn
                .wait_timeout(running, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A job's place in the queue, given back when the job ends however it ends.
struct QueueTurn<'a>(&'a IndexQueue);

impl Drop for QueueTurn<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        self.0.turn.notify_all();
    }
}

pub struct Indexer {
    options: IndexOptions,
    queue: Arc<IndexQueue>,
    progress: Progress,
    embedder: OnceLock<Arc<dyn Embedder>>,
    /// The embeddings of the open video, once the job has loaded or started them.
    embeddings: OnceLock<Arc<RwLock<EmbeddingFile>>>,
    fill_radius: OnceLock<u64>,
    texts: Mutex<Option<TextCache>>,
    cancel: AtomicBool,
    finished: AtomicBool,
    images_embedded: Arc<AtomicU64>,
    texts_embedded: Arc<AtomicU64>,
}

impl Indexer {
    /// Starts loading the model and then indexing `video` on a background thread.
    /// `load_model` runs on that thread (it may read hundreds of MB or download).
    pub fn start(
        video: Result<Arc<OpenVideo>, String>,
        options: IndexOptions,
        queue: Arc<IndexQueue>,
        load_model: impl FnOnce() -> Result<Arc<dyn Embedder>, String> + Send + 'static,
    ) -> Arc<Self> {
        let indexer = Arc::new(Self {
            options,
            queue,
            progress: Progress::default(),
            embedder: OnceLock::new(),
            embeddings: OnceLock::new(),
            fill_radius: OnceLock::new(),
            texts: Mutex::new(None),
            cancel: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            images_embedded: Default::default(),
            texts_embedded: Default::default(),
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
        let embedder: Arc<dyn Embedder> = Arc::new(Counting {
            inner: embedder,
            images: Arc::clone(&self.images_embedded),
            texts: Arc::clone(&self.texts_embedded),
        });
        let identity = embedder.identity();
        let _ = self.embedder.set(Arc::clone(&embedder));
        self.progress.update(|s| {
            s.model = Some(identity.name.clone());
            s.message = None;
        });
        let video = video?;
        let meta = video.metadata();
        let to_index = VideoToIndex::with_index(video.path(), Arc::clone(video.index()))?;
        let _ = self
            .fill_radius
            .set(fill_radius(meta.fps, self.options.sample_fps));
        let (cache_path, file, problem) = load_cache(&to_index, embedder.as_ref(), &self.options);
        let store = Arc::clone(self.embeddings.get_or_init(|| Arc::new(RwLock::new(file))));
        // A complete index needs no turn; anything else waits for one (scores of what is
        // cached are answered meanwhile).
        let planned = to_index.plan(self.options.sample_fps).len() as u64;
        let cached = store.read().unwrap_or_else(|e| e.into_inner()).covered() as u64;
        let _turn = if cached < planned {
            self.progress.update(|s| {
                s.done = cached;
                s.total = planned;
                s.message = Some("queued: waiting for another video's indexing to finish".into());
            });
            let turn = self.queue.enter(&self.cancel);
            self.progress.update(|s| s.message = None);
            Some(turn.ok_or("indexing was stopped before its turn came")?)
        } else {
            None
        };
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
        IndexStatus {
            images_embedded: self.images_embedded.load(Ordering::Relaxed),
            texts_embedded: self.texts_embedded.load(Ordering::Relaxed),
            ..self.progress.snapshot()
        }
    }

    /// Stops the job at its next batch and waits up to `wait` for it to save its frames.
    pub fn stop(&self, wait: Duration) {
        self.cancel.store(true, Ordering::Relaxed);
        let started = std::time::Instant::now();
        while !self.finished.load(Ordering::Relaxed) && started.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ready_embedder(&self) -> Result<&Arc<dyn Embedder>, String> {
        self.embedder.get().ok_or_else(|| {
            self.status()
                .message
                .unwrap_or_else(|| "the CLIP model is still loading".into())
        })
    }

    /// Text embeddings through the model's text cache.
    fn embed_texts(
        &self,
        embedder: &dyn Embedder,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, String> {
        let mut cache = self.texts.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get_or_insert_with(|| {
                TextCache::open(
                    &self.options.cache_dir,
                    ModelKey::from(&embedder.identity()),
                )
            })
            .embed(|chunk| embedder.embed_texts(chunk), texts)
            .map_err(|e| e.to_string())
    }

    /// Cosine scores of the embedded frames. Blocking: embeds prompts not yet cached.
    pub fn scores_blocking(&self, prompts: &[String]) -> Result<ScoreSeries, String> {
        let embedder = self.ready_embedder()?;
        let vectors = self.embed_texts(embedder.as_ref(), prompts)?;
        let complete = self.status().state == IndexState::Done;
        let (frames, missing, video_frames, series) = match self.embeddings.get() {
            Some(store) => {
                let file = store.read().unwrap_or_else(|e| e.into_inner());
                (
                    file.frames.clone(),
                    file.missing.clone(),
                    file.header.video_frames,
                    crate::search::cosine_rows(&file, &vectors),
                )
            }
            None => (Vec::new(), Vec::new(), 0, vec![Vec::new(); prompts.len()]),
        };
        Ok(ScoreSeries {
            frames,
            missing,
            video_frames,
            fill_radius: self.fill_radius.get().copied().unwrap_or(0),
            complete,
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

    /// The `top` embedded frames most like `text`, `image` or both, at least a second apart.
    pub fn search_blocking(
        &self,
        text: Option<&str>,
        image: Option<&[u8]>,
        top: usize,
        fps: f64,
    ) -> Result<Vec<SearchHit>, String> {
        let embedder = self.ready_embedder()?;
        let mut queries = Vec::new();
        if let Some(text) = text {
            queries.extend(self.embed_texts(embedder.as_ref(), &[text.to_string()])?);
        }
        if let Some(bytes) = image {
            let frame = crate::video::decode_image(bytes)
                .ok()
                .filter(|m| !opencv::prelude::MatTraitConst::empty(m))
                .ok_or("the uploaded file is not an image (JPEG, PNG, BMP or WebP)")?;
            queries.extend(
                embedder
                    .embed_images(std::slice::from_ref(&frame))
                    .map_err(|e| e.to_string())?,
            );
        }
        let Some(store) = self.embeddings.get() else {
            return Ok(Vec::new());
        };
        let file = store.read().unwrap_or_else(|e| e.into_inner());
        let min_gap = fps.round().max(1.0) as u64;
        Ok(
            crate::search::top_k(&file, &crate::search::combine(&queries), top, min_gap)
                .into_iter()
                .map(|h| SearchHit {
                    frame: h.frame,
                    score: h.score,
                })
                .collect(),
        )
    }
}

/// Counts what goes through the model, so the page (and tests) can see that adding a prompt
/// embeds one text and no image.
struct Counting {
    inner: Arc<dyn Embedder>,
    images: Arc<AtomicU64>,
    texts: Arc<AtomicU64>,
}

impl Embedder for Counting {
    fn identity(&self) -> crate::embed::ModelIdentity {
        self.inner.identity()
    }
    fn logit_scale(&self) -> f32 {
        self.inner.logit_scale()
    }
    fn prepare_image(&self, frame: &opencv::core::Mat) -> Result<PreparedImage, EmbedError> {
        self.inner.prepare_image(frame)
    }
    fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let out = self.inner.embed_prepared(images)?;
        self.images
            .fetch_add(images.len() as u64, Ordering::Relaxed);
        Ok(out)
    }
    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let out = self.inner.embed_texts(texts)?;
        self.texts.fetch_add(texts.len() as u64, Ordering::Relaxed);
        Ok(out)
    }
    fn is_truncated(&self, text: &str) -> bool {
        self.inner.is_truncated(text)
    }
}
