//! Indexing the whole library in the background (`index_library: true`): every listed video
//! with every configured model, one job at a time, behind the videos people open. A video that
//! is open is left to its own jobs; a background job gives its turn up as soon as an opened
//! video's job waits for one (it saves what it has, and resumes later from its cache file).
//!
//! Invariant: nothing here embeds anything an index job would not: the jobs are the ordinary
//! ones, with their caches, checkpoints and resumption.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use store::cache::EmbeddingFile;

use super::files::{stamp, video_id};
use super::Library;
use crate::indexing::{IndexService, VideoToIndex};
use crate::sync::lock;
use crate::video::FrameIndex;
use investigator_core::types::Indexed;

/// How often a running background job looks whether an opened video waits.
const WATCH: Duration = Duration::from_millis(200);
/// How long the loop rests when every video is indexed (new files may come: uploads).
const REST: Duration = Duration::from_secs(5);

/// The background job running now: its video, model place and service.
pub(super) struct BackgroundJob {
    pub path: std::path::PathBuf,
    pub place: usize,
    pub service: Arc<IndexService>,
}

impl Library {
    /// Starts (`on`) or stops indexing every video of the library with every model in the
    /// background. Stopping lets the running job save what it has.
    pub fn set_index_library(self: &Arc<Self>, on: bool) {
        self.index_library.store(on, Ordering::SeqCst);
        if !on {
            return;
        }
        let library = Arc::downgrade(self);
        self.library_thread.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("library-index".into())
                .spawn(move || loop {
                    let Some(library) = library.upgrade() else {
                        return;
                    };
                    let busy = library.index_library.load(Ordering::SeqCst) && library.index_next();
                    drop(library);
                    if !busy {
                        std::thread::sleep(REST);
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("cannot start indexing the library in the background: {e}");
            }
        });
    }

    /// Whether the library is being indexed in the background.
    pub fn indexes_library(&self) -> bool {
        self.index_library.load(Ordering::SeqCst)
    }

    /// Keeps the vector indexes of the loaded models up to date with the caches every few
    /// seconds, so that a search finds them ready (a search also syncs before it scans).
    pub fn start_vector_sync(self: &Arc<Self>) {
        let library = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("library-vectors".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                let Some(library) = library.upgrade() else {
                    return;
                };
                for place in 0..library.models.len() {
                    if library.models[place].model.ready().is_some() {
                        if let Err(e) = library.refresh_vectors(place) {
                            tracing::warn!("library index: {e}");
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the library index's updates: {e}");
        }
    }

    /// The background job's service if it indexes with the model at `place`.
    pub(super) fn background_service(&self, place: usize) -> Option<Arc<IndexService>> {
        lock(&self.background)
            .as_ref()
            .filter(|job| job.place == place)
            .map(|job| Arc::clone(&job.service))
    }

    /// How far the background job has indexed `path` with the default model, if it is on it.
    pub(super) fn background_progress(&self, path: &Path) -> Option<(u64, u64)> {
        lock(&self.background)
            .as_ref()
            .filter(|job| job.path == path && job.place == 0)
            .map(|job| {
                let status = job.service.status();
                (status.done, status.total)
            })
    }

    /// Indexes the first (video, model) that needs it, until done or an opened video needs
    /// the turn; `false` when nothing needed indexing.
    fn index_next(&self) -> bool {
        for (id, path) in self.files() {
            if lock(&self.sessions).contains_key(&id) {
                continue; // open: its own jobs index it
            }
            for place in 0..self.models.len() {
                if self.is_indexed(&path, place) {
                    continue;
                }
                self.run_background(&path, place);
                return true;
            }
        }
        false
    }

    /// Whether `path` is fully indexed with the model at `place` (loading the model). What a
    /// cache file holds is remembered until the file changes: the loop asks about every video
    /// each round.
    fn is_indexed(&self, path: &Path, place: usize) -> bool {
        let Ok(model) = self.models[place].model.get() else {
            return true; // a model that cannot load indexes nothing: the page says why
        };
        let Ok(meta) = self.probe(path) else {
            return true; // cannot be opened: listed with its error
        };
        let Ok(video) = VideoToIndex::with_metadata(path, meta) else {
            return true;
        };
        let planned = video.plan(self.index_options.sample_fps).len();
        let header = video.header(model.as_ref(), self.index_options.sample_fps);
        let file = self
            .index_options
            .cache_dir
            .join(EmbeddingFile::file_name_skipping(
                &header,
                self.index_options.skip_similar,
            ));
        let Some(stamp) = stamp(&file) else {
            return false;
        };
        if let Some((known, (indexed, _))) = lock(&self.cache_states).get(&file) {
            if *known == stamp {
                return *indexed == Indexed::Yes;
            }
        }
        let covered = EmbeddingFile::peek(&file)
            .ok()
            .filter(|f| f.header.video == header.video)
            .map_or(0, |f| f.covered());
        let indexed = match covered {
            c if c >= planned => Indexed::Yes,
            0 => Indexed::No,
            _ => Indexed::Partly,
        };
        let share = covered as f32 / planned.max(1) as f32;
        lock(&self.cache_states).insert(file, (stamp, (indexed, share.min(1.0))));
        indexed == Indexed::Yes
    }

    /// Runs one background job to its end, stopping it when an opened video waits.
    fn run_background(&self, path: &Path, place: usize) {
        let video = FrameIndex::load_or_build(path, Some(&self.index_options.cache_dir))
            .map(|index| (path.to_path_buf(), index))
            .map_err(Arc::new);
        let model = Arc::clone(&self.models[place].model);
        let service = IndexService::start_with(
            video,
            self.index_options.clone(),
            Arc::clone(&self.queue),
            move || model.get(),
            true,
            None,
        );
        *lock(&self.background) = Some(BackgroundJob {
            path: path.to_path_buf(),
            place,
            service: Arc::clone(&service),
        });
        tracing::info!(
            video = video_id(path),
            place,
            "indexing the library in the background"
        );
        while !service.finished() {
            let switched_off = !self.index_library.load(Ordering::SeqCst);
            if switched_off
                || self.queue.foreground_waiting() > 0
                || lock(&self.sessions).contains_key(&video_id(path))
            {
                service.stop(Duration::from_secs(30));
                break;
            }
            std::thread::sleep(WATCH);
        }
        // Its rows join the library index before the job is forgotten.
        if let (Some(name), Some(store)) = (service.cache_name(), service.embeddings()) {
            if let Ok((index, _)) = self.vectors(place) {
                use crate::vectors::VectorStore;
                let file = crate::sync::read(store);
                if let Err(e) = index.sync(name, &file) {
                    tracing::warn!("library index: {e}");
                }
            }
        }
        *lock(&self.background) = None;
        // An opened video's job goes first: wait until no one waits.
        while self.queue.foreground_waiting() > 0 {
            std::thread::sleep(WATCH);
        }
    }
}
