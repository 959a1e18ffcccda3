//! The web server's indexing service: loads the model off the async runtime, runs the one
//! indexing job of the open video in the background, and lends its embeddings (growing) and its
//! text cache to `search`. However many tabs ask, there is one job per video.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration;

use investigator_core::scores::fill_radius;
use investigator_core::types::{IndexState, IndexStatus};

use store::cache::{EmbeddingFile, ModelKey, TextCache};

use crate::embed::{EmbedError, Embedder, LoadError, PreparedImage};
use crate::sync::{lock, read};
use crate::video::{FrameIndex, VideoError};

use super::job::IndexJob;
use super::options::IndexOptions;
use super::passes::Focus;
use super::plan::{load_cache, Tap, VideoToIndex};
use super::report::Progress;

/// Why a background job did not index. Its message is the page's: it names a video's file,
/// never its folder (the full error of a model that fails to load goes to the log).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("No CLIP model is loaded, so there are no similarity curves (the video still plays). The server's log says which files to put where: config.json, model.safetensors and tokenizer.json in one folder, named by `model:` in config.yaml or --model.")]
    NoModel(LoadError),
    #[error("{}", .0.public())]
    Video(Arc<VideoError>),
    #[error("{}", .0.public())]
    Open(#[from] super::plan::OpenError),
    #[error("indexing was stopped before its turn came")]
    StoppedInQueue,
    #[error("{}", .error.public(.video))]
    Index {
        error: super::report::IndexError,
        video: PathBuf,
    },
}

/// The model is not loaded yet, or failed to load: what the page says instead of scores.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotReady(pub String);

/// How many videos may be indexed at once (`max_indexing_jobs`); the other jobs wait here, so
/// that opening several videos does not split two cores between them. Background jobs (the
/// library's) take a turn only while no other job waits, and leave when one comes.
pub struct IndexQueue {
    running: Mutex<usize>,
    turn: Condvar,
    limit: usize,
    /// Jobs of videos people opened that wait for a turn.
    foreground_waiting: AtomicUsize,
}

impl IndexQueue {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            running: Mutex::new(0),
            turn: Condvar::new(),
            limit: limit.max(1),
            foreground_waiting: AtomicUsize::new(0),
        })
    }

    /// Jobs of opened videos waiting for a turn: a background job gives its turn up for them.
    pub fn foreground_waiting(&self) -> usize {
        self.foreground_waiting.load(Ordering::SeqCst)
    }

    /// Waits for a free place (a background job: a free place no other job waits for);
    /// `None` if `cancel` was set while waiting.
    fn enter<'a>(&'a self, cancel: &AtomicBool, background: bool) -> Option<QueueTurn<'a>> {
        let _waiting = (!background).then(|| Waiting::new(&self.foreground_waiting));
        let mut running = lock(&self.running);
        loop {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            let others_first = background && self.foreground_waiting() > 0;
            if *running < self.limit && !others_first {
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

/// Counts a foreground job as waiting while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A job's place in the queue, given back when the job ends however it ends.
struct QueueTurn<'a>(&'a IndexQueue);

impl Drop for QueueTurn<'_> {
    fn drop(&mut self) {
        let mut running = lock(&self.0.running);
        *running = running.saturating_sub(1);
        self.0.turn.notify_all();
    }
}

pub struct IndexService {
    options: IndexOptions,
    queue: Arc<IndexQueue>,
    progress: Progress,
    embedder: OnceLock<Arc<dyn Embedder>>,
    /// The embeddings of the open video, once the job has loaded or started them.
    embeddings: OnceLock<Arc<RwLock<EmbeddingFile>>>,
    /// The cache file's name in the cache folder, once the job has chosen it.
    cache_name: OnceLock<String>,
    /// A background job (the library's): it waits behind the others.
    background: bool,
    fill_radius: OnceLock<u64>,
    /// The span the latest viewer to move looks at: a coarse-to-fine job refines it first.
    focus: Focus,
    texts: Mutex<Option<TextCache>>,
    cancel: AtomicBool,
    finished: AtomicBool,
    images_embedded: Arc<AtomicU64>,
    texts_embedded: Arc<AtomicU64>,
}

impl IndexService {
    /// Starts loading the model and then indexing `video` (its file and frame index, or why it
    /// cannot be opened) on a background thread. `load_model` runs on that thread (it may read
    /// hundreds of MB or download).
    /// `tap`, where given, takes the frames the job decodes (the display proxy's builder).
    pub fn start(
        video: Result<(PathBuf, Arc<FrameIndex>), Arc<VideoError>>,
        options: IndexOptions,
        queue: Arc<IndexQueue>,
        load_model: impl FnOnce() -> Result<Arc<dyn Embedder>, LoadError> + Send + 'static,
        tap: Option<Tap>,
    ) -> Arc<Self> {
        Self::start_with(video, options, queue, load_model, false, tap)
    }

    /// [`start`](Self::start) for a job that waits behind every other (`background`): the
    /// library's, for videos nobody has open.
    pub fn start_with(
        video: Result<(PathBuf, Arc<FrameIndex>), Arc<VideoError>>,
        options: IndexOptions,
        queue: Arc<IndexQueue>,
        load_model: impl FnOnce() -> Result<Arc<dyn Embedder>, LoadError> + Send + 'static,
        background: bool,
        tap: Option<Tap>,
    ) -> Arc<Self> {
        let indexer = Arc::new(Self {
            options,
            queue,
            progress: Progress::default(),
            embedder: OnceLock::new(),
            embeddings: OnceLock::new(),
            cache_name: OnceLock::new(),
            background,
            fill_radius: OnceLock::new(),
            focus: Focus::default(),
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
                let result = worker.run(video, load_model, tap);
                worker
                    .finished
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                if let Err(error) = result {
                    tracing::warn!("indexing: {error}");
                    worker.progress.update(|s| {
                        s.state = IndexState::Failed;
                        s.message = Some(error.to_string());
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
        video: Result<(PathBuf, Arc<FrameIndex>), Arc<VideoError>>,
        load_model: impl FnOnce() -> Result<Arc<dyn Embedder>, LoadError>,
        tap: Option<Tap>,
    ) -> Result<(), JobError> {
        self.progress
            .update(|s| s.message = Some("loading the CLIP model…".into()));
        // The full error names folders on this machine: it goes to the log, not the page.
        let embedder = load_model().map_err(|e| {
            tracing::error!("{e}");
            JobError::NoModel(e)
        })?;
        let embedder: Arc<dyn Embedder> = Arc::new(Counting {
            inner: embedder,
            images: Arc::clone(&self.images_embedded),
            texts: Arc::clone(&self.texts_embedded),
        });
        let _ = self.embedder.set(Arc::clone(&embedder));
        self.progress.update(|s| {
            s.model = Some(crate::embed::model_label(embedder.as_ref()));
            s.precision_note = embedder.precision_note();
            s.message = None;
        });
        let (path, frame_index) = video.map_err(JobError::Video)?;
        let meta = frame_index.metadata();
        let mut to_index = VideoToIndex::with_index(&path, frame_index)?;
        to_index.tap = tap;
        let _ = self
            .fill_radius
            .set(fill_radius(meta.fps, self.options.sample_fps));
        let (cache_path, file, problem) = load_cache(&to_index, embedder.as_ref(), &self.options);
        if let Some(name) = cache_path.file_name().and_then(|n| n.to_str()) {
            let _ = self.cache_name.set(name.to_string());
        }
        let store = Arc::clone(self.embeddings.get_or_init(|| Arc::new(RwLock::new(file))));
        // A complete index needs no turn; anything else waits for one (scores of what is
        // cached are answered meanwhile).
        let planned = to_index.plan(self.options.sample_fps).len() as u64;
        let (cached, scene_complete) = {
            let file = read(&store);
            (file.covered() as u64, file.scene_complete())
        };
        // Measuring the scene cuts of an older file decodes the whole video: it waits too.
        let _turn = if cached < planned || !scene_complete {
            self.progress.update(|s| {
                s.done = cached;
                s.total = planned;
                s.message = Some("queued: waiting for another video's indexing to finish".into());
            });
            let turn = self.queue.enter(&self.cancel, self.background);
            self.progress.update(|s| s.message = None);
            Some(turn.ok_or(JobError::StoppedInQueue)?)
        } else {
            None
        };
        let job = IndexJob {
            video: &to_index,
            embedder: embedder.as_ref(),
            options: &self.options,
            progress: &self.progress,
            cancel: &self.cancel,
            cache_path: &cache_path,
            store: &store,
            cache_problem: problem,
            focus: Some(&self.focus),
        };
        let report = job.run().map_err(|error| JobError::Index {
            error,
            video: path.clone(),
        })?;
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

    /// The model, once loaded; else what the page should say instead.
    pub fn ready_embedder(&self) -> Result<&Arc<dyn Embedder>, NotReady> {
        self.embedder.get().ok_or_else(|| {
            NotReady(
                self.status()
                    .message
                    .unwrap_or_else(|| "the CLIP model is still loading".into()),
            )
        })
    }

    /// Text embeddings through the model's text cache.
    pub fn embed_texts(
        &self,
        embedder: &dyn Embedder,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut cache = lock(&self.texts);
        cache
            .get_or_insert_with(|| {
                TextCache::open(
                    &self.options.cache_dir,
                    ModelKey::from(&embedder.identity()),
                )
            })
            .embed(|chunk| embedder.embed_texts(chunk), texts)
    }

    /// The cache file's name (in the cache folder), once the job has chosen it.
    pub fn cache_name(&self) -> Option<&str> {
        self.cache_name.get().map(String::as_str)
    }

    /// Whether the job has ended (done, failed or stopped).
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    /// The embeddings of the video, once the job has loaded or started them (they grow while
    /// it runs).
    pub fn embeddings(&self) -> Option<&Arc<RwLock<EmbeddingFile>>> {
        self.embeddings.get()
    }

    /// How far a frame's score reaches to frames that were not embedded: as far as sampling
    /// says, and while coarse-to-fine passes run, as far as the current pass's spacing.
    pub fn fill_radius(&self) -> u64 {
        let sampled = self.fill_radius.get().copied().unwrap_or(0);
        sampled.max(self.progress.snapshot().fill_radius)
    }

    /// A viewer looks at frames `span` (its chart's zoom window, or around its playhead): a
    /// coarse-to-fine job embeds that span's frames before it goes on with its pass. The
    /// latest call wins.
    pub fn look_at(&self, span: std::ops::RangeInclusive<u64>) {
        self.focus.set(span);
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
    fn precision(&self) -> Option<store::config::Precision> {
        self.inner.precision()
    }
    fn precision_note(&self) -> Option<String> {
        self.inner.precision_note()
    }
    fn logit_scale(&self) -> f32 {
        self.inner.logit_scale()
    }
    fn logit_bias(&self) -> Option<f32> {
        self.inner.logit_bias()
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
    // Every method the inner embedder overrides is forwarded: a default here would silently
    // change what the server computes (it once dropped `image_difference`, which turned
    // `skip_similar` off in the web server).
    fn image_difference(&self, a: &PreparedImage, b: &PreparedImage) -> Option<f32> {
        self.inner.image_difference(a, b)
    }
    fn input_size(&self) -> Option<(usize, usize)> {
        self.inner.input_size()
    }
    fn explains(&self) -> bool {
        self.inner.explains()
    }
    fn explain(
        &self,
        frame: &opencv::core::Mat,
        text: &[f32],
        start_layer: Option<usize>,
    ) -> Result<crate::embed::Relevance, EmbedError> {
        self.inner.explain(frame, text, start_layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An embedder whose every optional method answers something other than the default.
    struct Siglipish;

    impl Embedder for Siglipish {
        fn identity(&self) -> crate::embed::ModelIdentity {
            crate::embed::ModelIdentity {
                name: "siglipish".into(),
                revision: "r".into(),
                dimension: 2,
            }
        }
        fn logit_scale(&self) -> f32 {
            10.0
        }
        fn logit_bias(&self) -> Option<f32> {
            Some(-10.0)
        }
        fn prepare_image(&self, _: &opencv::core::Mat) -> Result<PreparedImage, EmbedError> {
            Ok(PreparedImage::Cropped(vec![0; 3]))
        }
        fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(vec![vec![1.0, 0.0]; images.len()])
        }
        fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(vec![vec![0.0, 1.0]; texts.len()])
        }
        fn is_truncated(&self, _: &str) -> bool {
            true
        }
        fn image_difference(&self, _: &PreparedImage, _: &PreparedImage) -> Option<f32> {
            Some(7.0)
        }
        fn input_size(&self) -> Option<(usize, usize)> {
            Some((3, 1))
        }
    }

    #[test]
    fn counting_forwards_everything_the_model_answers_and_counts() {
        let counting = Counting {
            inner: Arc::new(Siglipish),
            images: Default::default(),
            texts: Default::default(),
        };
        assert_eq!(counting.logit_scale(), 10.0);
        assert_eq!(counting.logit_bias(), Some(-10.0));
        assert!(counting.is_truncated("x"));
        let image = PreparedImage::Cropped(vec![0; 3]);
        assert_eq!(counting.image_difference(&image, &image), Some(7.0));
        assert_eq!(counting.input_size(), Some((3, 1)));
        counting.embed_prepared(&[image.clone(), image]).unwrap();
        counting.embed_texts(&["a".into()]).unwrap();
        assert_eq!(counting.images.load(Ordering::Relaxed), 2);
        assert_eq!(counting.texts.load(Ordering::Relaxed), 1);
    }
}
