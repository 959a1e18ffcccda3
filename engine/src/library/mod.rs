//! The video library: the config's `video_path` plus the videos in the `library_dirs` folders,
//! each addressed by an opaque id. A client never names a file: an id is looked up among the
//! files the library lists, and a listed file must resolve (symlinks followed) inside a library
//! folder. Each opened video gets its own frame server (decoders) and, per model, its own
//! indexing job (the default model's starts when the video opens, another model's when it is
//! first asked for); the jobs take turns (`max_indexing_jobs`), each model is loaded once and
//! shared by its jobs, and all decoders share one budget. Each (video, model) has its own
//! cache file, so switching back to a model costs no embedding. Prompts adapted from a video's
//! labels train in background jobs (`adapt`).

mod adapt;
mod background;
mod files;
mod listing;
mod models;
mod search;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use investigator_core::types::{Indexed, ModelChoice, VideoInfo};
use store::config::Settings;

pub use adapt::{is_stale, video_key, AdaptWebError};
pub use files::{check_upload_name, video_id, NameError, MAX_NAME_BYTES, VIDEO_EXTENSIONS};
pub use models::{model_choices, model_slots, ModelSlot, SharedModel};
pub use search::LibrarySearchError;

use crate::frames::{FrameServer, FrameSettings};
use crate::indexing::{IndexOptions, IndexQueue, IndexService};
use crate::labels::LabelStore;
use crate::sync::lock;
use listing::Probe;

/// Why the library cannot give a video.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LibraryError {
    #[error("not a video id: open the list of videos and choose one")]
    NotAnId,
    #[error("there is no video {0} in the library (it may have been deleted or renamed): open the list of videos and choose one")]
    NoSuchVideo(String),
    /// The video is listed but cannot be opened; the message names the file, not its folder.
    #[error("{0}")]
    CannotOpen(String),
    #[error("there is no model {0:?} on this server: pick one from the list the page shows")]
    NoSuchModel(String),
}

/// One opened video: its frames and its index by each model asked for so far.
pub struct Session {
    pub path: PathBuf,
    pub frames: Arc<FrameServer>,
    /// The default model's index (started when the video opened).
    pub index: Arc<IndexService>,
    /// The other models' indexes, by their place in the model list.
    others: Mutex<HashMap<usize, Arc<IndexService>>>,
}

impl Session {
    /// The index of this video by the model at `place`, if it has been started.
    pub fn index_of(&self, place: usize) -> Option<Arc<IndexService>> {
        if place == 0 {
            Some(Arc::clone(&self.index))
        } else {
            lock(&self.others).get(&place).cloned()
        }
    }

    /// Every index of this video that has been started, the default model's first.
    pub fn indexes(&self) -> Vec<Arc<IndexService>> {
        let mut all = vec![Arc::clone(&self.index)];
        let others = lock(&self.others);
        let mut keys: Vec<_> = others.keys().copied().collect();
        keys.sort();
        all.extend(keys.into_iter().map(|k| Arc::clone(&others[&k])));
        all
    }
}

pub struct Library {
    default_video: PathBuf,
    default_id: String,
    /// The library folders, resolved; folders that do not exist are left out (and logged).
    roots: Vec<PathBuf>,
    max_upload_bytes: u64,
    /// Longest clip the page may export (`clip_max_s`).
    clip_max_s: f64,
    frames: FrameSettings,
    /// Encoded frames of every video, for every viewer.
    frame_cache: Arc<crate::frames::cache::FrameCache>,
    index_options: IndexOptions,
    /// The config's models, the default first.
    models: Vec<ModelSlot>,
    queue: Arc<IndexQueue>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    probes: Mutex<HashMap<PathBuf, Probe>>,
    /// How complete each cache file read for the list was, until it changes (they can be
    /// hundreds of MB; the list should not read them every time).
    cache_states: Mutex<HashMap<PathBuf, (files::Stamp, (Indexed, f32))>>,
    /// The library search's vector index per model place, opened on first use.
    vector_indexes: Mutex<HashMap<usize, Arc<crate::vectors::VectorIndex>>>,
    /// When each model's vector index last read the cache folder.
    folder_synced: Mutex<HashMap<usize, std::time::Instant>>,
    /// Each listed file's content fingerprint, until the file changes.
    fingerprints: Mutex<HashMap<PathBuf, (files::Stamp, store::cache::VideoFingerprint)>>,
    /// The library's background indexing job running now.
    background: Mutex<Option<background::BackgroundJob>>,
    /// Whether the library is indexed in the background (`index_library`, or the page's
    /// switch), and whether its thread has started.
    index_library: std::sync::atomic::AtomicBool,
    library_thread: std::sync::Once,
    /// Adapted prompts: the jobs, and their scores for the charts.
    adapt: adapt::AdaptJobs,
}

impl Library {
    /// Opens the library and starts indexing the default video with the default model (as the
    /// single-video server did). `models` are the config's, the default first (at least one).
    pub fn new(settings: &Settings, models: Vec<ModelSlot>) -> Arc<Self> {
        let library = Self::without_sessions(settings, models);
        // The default video opens at once, so its indexing starts with the server.
        let _ = library.session(&library.default_id.clone());
        library
    }

    /// The library with nothing opened and no job started (the CLI's: its listing, its search).
    pub fn without_sessions(settings: &Settings, models: Vec<ModelSlot>) -> Arc<Self> {
        assert!(!models.is_empty(), "the library needs at least one model");
        let roots = settings
            .library_dirs
            .iter()
            .filter_map(|dir| match dir.canonicalize() {
                Ok(root) if root.is_dir() => Some(root),
                Ok(_) => {
                    tracing::warn!("library folder {} is not a folder; left out", dir.display());
                    None
                }
                Err(e) => {
                    tracing::warn!(
                        "library folder {} cannot be opened ({e}); left out",
                        dir.display()
                    );
                    None
                }
            })
            .collect();
        let default_video = settings
            .video_path
            .canonicalize()
            .unwrap_or_else(|_| settings.video_path.clone());
        let library = Arc::new(Self {
            default_id: video_id(&default_video),
            default_video,
            roots,
            max_upload_bytes: settings.max_upload_mb.saturating_mul(1024 * 1024),
            clip_max_s: settings.clip_max_s,
            frames: FrameSettings::from(settings),
            frame_cache: FrameSettings::from(settings).new_cache(),
            index_options: IndexOptions::from(settings),
            models,
            queue: IndexQueue::new(settings.max_indexing_jobs),
            sessions: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            cache_states: Mutex::new(HashMap::new()),
            vector_indexes: Mutex::new(HashMap::new()),
            folder_synced: Mutex::new(HashMap::new()),
            fingerprints: Mutex::new(HashMap::new()),
            background: Mutex::new(None),
            index_library: std::sync::atomic::AtomicBool::new(false),
            library_thread: std::sync::Once::new(),
            adapt: adapt::AdaptJobs::default(),
        });
        library
    }

    pub fn default_id(&self) -> &str {
        &self.default_id
    }

    /// The models the page may pick, the default first.
    pub fn model_choices(&self) -> Vec<ModelChoice> {
        self.models.iter().map(|m| m.choice.clone()).collect()
    }

    /// The place in the model list of `model` (`None`: the default).
    pub(crate) fn model_place(&self, model: Option<&str>) -> Result<usize, LibraryError> {
        match model {
            None => Ok(0),
            Some(id) => self
                .models
                .iter()
                .position(|m| m.choice.id == id)
                .ok_or_else(|| LibraryError::NoSuchModel(id.chars().take(64).collect())),
        }
    }

    /// The place in the model list of `model` (`None`: the default).
    pub fn model_place_of(&self, model: Option<&str>) -> Result<usize, LibraryError> {
        self.model_place(model)
    }

    /// The index of `session`'s video by `model` (`None`: the default), starting its job (in
    /// the queue) the first time that model is asked for.
    pub fn index(
        &self,
        session: &Session,
        model: Option<&str>,
    ) -> Result<Arc<IndexService>, LibraryError> {
        let place = self.model_place(model)?;
        if place == 0 {
            return Ok(Arc::clone(&session.index));
        }
        let mut others = lock(&session.others);
        let index = others
            .entry(place)
            .or_insert_with(|| self.start_index(&session.frames, place));
        Ok(Arc::clone(index))
    }

    /// Starts indexing `frames`'s video with the model at `place` (queued behind other jobs).
    fn start_index(&self, frames: &FrameServer, place: usize) -> Arc<IndexService> {
        let model = Arc::clone(&self.models[place].model);
        IndexService::start(
            frames
                .video()
                .map(|v| (v.path().to_path_buf(), Arc::clone(v.frame_index())))
                .map_err(Arc::clone),
            self.index_options.clone(),
            Arc::clone(&self.queue),
            move || model.get(),
            frames.frame_tap(),
        )
    }

    /// The folder uploads go to, and the largest upload in bytes.
    pub fn upload_target(&self) -> Option<(&Path, u64)> {
        self.roots
            .first()
            .map(|r| (r.as_path(), self.max_upload_bytes))
    }

    /// The open session of `id`, opening the video (and queueing its indexing) on first use.
    /// Where clips are written while they are exported (inside the cache folder), and the
    /// longest clip allowed, in seconds.
    pub fn excerpt_target(&self) -> (PathBuf, f64) {
        (self.index_options.cache_dir.join("clips"), self.clip_max_s)
    }

    pub fn session(&self, id: &str) -> Result<Arc<Session>, LibraryError> {
        let mut sessions = lock(&self.sessions);
        if let Some(session) = sessions.get(id) {
            let present = id == self.default_id || session.path.is_file();
            if present && session.frames.file_unchanged() {
                return Ok(Arc::clone(session));
            }
            // Deleted or replaced while open: forget it (its jobs save what they have and
            // stop; its display proxy stops, and is removed when the new content's is made).
            let gone = sessions.remove(id);
            if let Some(gone) = gone {
                let indexes = gone.indexes();
                std::thread::spawn(move || {
                    for index in indexes {
                        index.stop(std::time::Duration::from_secs(10));
                    }
                });
            }
        }
        let path = self.resolve(id)?;
        let frames = Arc::new(FrameServer::sharing(
            &path,
            self.frames,
            Some(&self.index_options.cache_dir),
            Arc::clone(&self.frame_cache),
        ));
        let index = self.start_index(&frames, 0);
        let session = Arc::new(Session {
            path,
            frames,
            index,
            others: Mutex::new(HashMap::new()),
        });
        sessions.insert(id.to_string(), Arc::clone(&session));
        Ok(session)
    }

    /// The labels of `session`'s video (beside the caches, keyed by the video's content), and
    /// its frame count.
    pub fn labels(&self, session: &Session) -> Result<(LabelStore, u64), LibraryError> {
        let video = session
            .frames
            .video()
            .map_err(|e| LibraryError::CannotOpen(e.public()))?;
        let store =
            LabelStore::of_file(&self.index_options.cache_dir, &session.path).map_err(|e| {
                LibraryError::CannotOpen(crate::video::without_folder(
                    &format!("cannot read {}: {e}", session.path.display()),
                    &session.path,
                ))
            })?;
        Ok((store, video.metadata().frames))
    }

    /// Metadata of `id` for the page.
    pub fn info(&self, id: &str) -> Result<VideoInfo, LibraryError> {
        let session = self.session(id)?;
        let mut info = session
            .frames
            .video()
            .map_err(|e| LibraryError::CannotOpen(e.public()))?
            .info();
        info.id = id.to_string();
        Ok(info)
    }

    /// Keeps the decoders of all videos together within `max_decoders`, closing idle ones
    /// first and then the least recently used.
    pub fn enforce_decoder_budget(&self) {
        let sessions: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        for session in &sessions {
            session.frames.close_idle_decoders();
        }
        // Each turn closes an idle decoder or stops: decoders in use are never closed, so the
        // budget may stay exceeded until they come back.
        loop {
            let open: usize = sessions.iter().map(|s| s.frames.decoder_weight()).sum();
            if open <= self.frames.max_decoders {
                break;
            }
            let oldest = sessions
                .iter()
                .filter_map(|s| s.frames.oldest_idle_decoder().map(|t| (t, s)))
                .min_by_key(|(t, _)| *t);
            match oldest {
                Some((_, session)) if session.frames.close_oldest_decoder() => {}
                _ => break,
            }
        }
    }

    /// Every open session, for stopping their jobs at shutdown.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }
}
