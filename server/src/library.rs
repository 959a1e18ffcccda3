//! The video library: the config's `video_path` plus the videos in the `library_dirs` folders,
//! each addressed by an opaque id. A client never names a file: an id is looked up among the
//! files the library lists, and a listed file must resolve (symlinks followed) inside a library
//! folder. Each opened video gets its own frame server (decoders) and, per model, its own
//! indexing job (the default model's starts when the video opens, another model's when it is
//! first asked for); the jobs take turns (`max_indexing_jobs`), each model is loaded once and
//! shared by its jobs, and all decoders share one budget. Each (video, model) has its own
//! cache file, so switching back to a model costs no embedding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use app::types::{IndexState, Indexed, LibraryVideo, ModelChoice, VideoInfo};
use store::fnv::Fnv64;

use crate::cache::EmbeddingFile;
use crate::config::Settings;
use crate::embed::Embedder;
use crate::frames::{FrameServer, FrameSettings};
use crate::index::{IndexOptions, IndexQueue, IndexService, VideoToIndex};
use crate::video::{self, Metadata};

/// File name endings listed as videos (others in a library folder are ignored).
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mkv", "webm", "mov", "avi", "mpg", "mpeg", "ts", "y4m", "ogv", "wmv", "flv",
    "3gp",
];

/// Longest file name accepted for an upload, in bytes (most file systems allow 255).
pub const MAX_NAME_BYTES: usize = 200;

type LoadModel = dyn Fn() -> Result<Arc<dyn Embedder>, String> + Send + Sync;

/// The model, loaded once on first use and shared by every video's indexing job.
pub struct SharedModel {
    load: Box<LoadModel>,
    loaded: OnceLock<Result<Arc<dyn Embedder>, String>>,
}

impl SharedModel {
    pub fn new(
        load: impl Fn() -> Result<Arc<dyn Embedder>, String> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            load: Box::new(load),
            loaded: OnceLock::new(),
        })
    }

    /// Loads on the first call (concurrent callers wait for it); later calls share the result.
    pub fn get(&self) -> Result<Arc<dyn Embedder>, String> {
        self.loaded.get_or_init(|| (self.load)()).clone()
    }

    /// The model if it has loaded, without waiting.
    fn ready(&self) -> Option<Arc<dyn Embedder>> {
        self.loaded.get().and_then(|r| r.as_ref().ok().cloned())
    }
}

/// One model the server offers: how the page names it, and the model.
pub struct ModelSlot {
    pub choice: ModelChoice,
    pub model: Arc<SharedModel>,
}

/// The page's names for the config's models: the repo id or folder name, and an id made of it
/// (lowercase; a repeated one gets `-2`, `-3`…). Paths never reach the page.
pub fn model_choices(models: &[String]) -> Vec<ModelChoice> {
    let mut choices: Vec<ModelChoice> = Vec::new();
    for model in models {
        let path = Path::new(model);
        let label = if path.is_absolute() || path.is_dir() {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        } else {
            model.clone()
        };
        // `owner/name@revision` → `name`.
        let repo = label.split('@').next().unwrap_or(&label);
        let name = repo.rsplit('/').next().unwrap_or(repo);
        let mut base: String = name
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .take(56)
            .collect();
        if base.is_empty() {
            base = "model".into();
        }
        let mut id = base.clone();
        let mut n = 2;
        while choices.iter().any(|c| c.id == id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        choices.push(ModelChoice { id, label });
    }
    choices
}

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

/// When a file last changed, and its size.
type Stamp = (SystemTime, u64);

/// What probing a file found, kept until the file changes.
struct Probe {
    stamp: Stamp,
    meta: Result<Metadata, String>,
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
    index_options: IndexOptions,
    /// The config's models, the default first.
    models: Vec<ModelSlot>,
    queue: Arc<IndexQueue>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    probes: Mutex<HashMap<PathBuf, Probe>>,
    /// How complete each cache file read for the list was, until it changes (they can be
    /// hundreds of MB; the list should not read them every time).
    cache_states: Mutex<HashMap<PathBuf, (Stamp, Indexed)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The id of the file at `path` (already resolved): a hash of the path, so it stays the same
/// across restarts (share links keep working) and tells nothing about where the file lives.
pub fn video_id(path: &Path) -> String {
    let mut hash = Fnv64::new();
    hash.update(path.as_os_str().as_encoded_bytes());
    format!("{:016x}", hash.finish())
}

fn has_video_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A file name an upload may take, or why not. Names are taken as given or refused, never
/// rewritten, so the user sees the name they chose.
pub fn check_upload_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the upload needs a file name (?name=video.mp4)".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the file name is {} bytes long; at most {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return Err("the file name must not start with a dot".into());
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_control()
            || matches!(
                c,
                '/' | '\\' | ':' | '%' | '*' | '?' | '"' | '<' | '>' | '|'
            )
    }) {
        return Err(format!(
            "the file name must not contain {c:?}: give a plain name such as holiday.mp4"
        ));
    }
    if !has_video_extension(Path::new(name)) {
        return Err(format!(
            "the file name must end in a video extension ({})",
            VIDEO_EXTENSIONS.join(", ")
        ));
    }
    Ok(())
}

impl Library {
    /// Opens the library and starts indexing the default video with the default model (as the
    /// single-video server did). `models` are the config's, the default first (at least one).
    pub fn new(settings: &Settings, models: Vec<ModelSlot>) -> Arc<Self> {
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
            index_options: IndexOptions::from(settings),
            models,
            queue: IndexQueue::new(settings.max_indexing_jobs),
            sessions: Mutex::new(HashMap::new()),
            probes: Mutex::new(HashMap::new()),
            cache_states: Mutex::new(HashMap::new()),
        });
        // The default video opens at once, so its indexing starts with the server.
        let _ = library.session(&library.default_id.clone());
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
    fn model_place(&self, model: Option<&str>) -> Result<usize, LibraryError> {
        match model {
            None => Ok(0),
            Some(id) => self
                .models
                .iter()
                .position(|m| m.choice.id == id)
                .ok_or_else(|| LibraryError::NoSuchModel(id.chars().take(64).collect())),
        }
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
                .map(|v| (v.path().to_path_buf(), Arc::clone(v.index()))),
            self.index_options.clone(),
            Arc::clone(&self.queue),
            move || model.get(),
        )
    }

    /// The folder uploads go to, and the largest upload in bytes.
    pub fn upload_target(&self) -> Option<(&Path, u64)> {
        self.roots
            .first()
            .map(|r| (r.as_path(), self.max_upload_bytes))
    }

    /// The listed files: the default video first, then each folder's videos by name. Only
    /// regular files whose resolved path lies inside their library folder.
    pub fn files(&self) -> Vec<(String, PathBuf)> {
        let mut files = vec![(self.default_id.clone(), self.default_video.clone())];
        for root in &self.roots {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    has_video_extension(p)
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .filter_map(|p| inside(root, &p))
                .collect();
            found.sort();
            for path in found {
                let id = video_id(&path);
                if !files.iter().any(|(known, _)| *known == id) {
                    files.push((id, path));
                }
            }
        }
        files
    }

    /// The file of `id`, or why there is none. Looked up among the listed files only.
    pub fn resolve(&self, id: &str) -> Result<PathBuf, LibraryError> {
        if !app::types::is_valid_video_id(id) {
            return Err(LibraryError::NotAnId);
        }
        self.files()
            .into_iter()
            .find(|(known, _)| known == id)
            .map(|(_, path)| path)
            .ok_or_else(|| LibraryError::NoSuchVideo(id.to_string()))
    }

    /// The open session of `id`, opening the video (and queueing its indexing) on first use.
    /// Where clips are written while they are exported (inside the cache folder), and the
    /// longest clip allowed, in seconds.
    pub fn clip_target(&self) -> (PathBuf, f64) {
        (self.index_options.cache_dir.join("clips"), self.clip_max_s)
    }

    pub fn session(&self, id: &str) -> Result<Arc<Session>, LibraryError> {
        let mut sessions = lock(&self.sessions);
        if let Some(session) = sessions.get(id) {
            if id == self.default_id || session.path.is_file() {
                return Ok(Arc::clone(session));
            }
            // Deleted while open: forget it (its jobs save what they have and stop).
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
        let frames = Arc::new(FrameServer::new(
            &path,
            self.frames,
            Some(&self.index_options.cache_dir),
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

    /// Metadata of `id` for the page.
    pub fn info(&self, id: &str) -> Result<VideoInfo, LibraryError> {
        let session = self.session(id)?;
        let mut info = session
            .frames
            .video()
            .map_err(LibraryError::CannotOpen)?
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
        loop {
            let open: usize = sessions.iter().map(|s| s.frames.open_decoders()).sum();
            if open <= self.frames.max_decoders {
                break;
            }
            let oldest = sessions
                .iter()
                .filter_map(|s| s.frames.close_idle_decoders().map(|t| (t, s)))
                .min_by_key(|(t, _)| *t);
            match oldest {
                Some((_, session)) => session.frames.close_oldest_decoder(),
                None => break,
            }
        }
    }

    /// Every open session, for stopping their jobs at shutdown.
    pub fn sessions(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// The list page's rows. Blocking: probes files it has not seen (or that changed).
    pub fn list(&self) -> Vec<LibraryVideo> {
        self.files()
            .into_iter()
            .map(|(id, path)| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let meta = self.probe(&path);
                let indexed = match &meta {
                    Ok(meta) => self.indexed(&id, &path, meta),
                    Err(_) => Indexed::No,
                };
                let (width, height, frames, duration_s) = match &meta {
                    Ok(m) => (m.width, m.height, m.frames, m.duration_s()),
                    Err(_) => (0, 0, 0, 0.0),
                };
                LibraryVideo {
                    default: id == self.default_id,
                    id,
                    name,
                    width,
                    height,
                    duration_s,
                    frames,
                    indexed,
                    error: meta.err(),
                }
            })
            .collect()
    }

    fn probe(&self, path: &Path) -> Result<Metadata, String> {
        // An open video knows its exact frame count.
        if let Some(session) = lock(&self.sessions).get(&video_id(path)) {
            return session.frames.video().map(|v| v.metadata());
        }
        let stamp = stamp(path).ok_or("the file cannot be read")?;
        if let Some(probe) = lock(&self.probes).get(path).filter(|p| p.stamp == stamp) {
            return probe.meta.clone();
        }
        let meta =
            // The frame index is kept in the cache folder: the video is scanned once, ever.
            video::FrameIndex::load_or_build(path, Some(&self.index_options.cache_dir))
                .map(|index| index.metadata())
                .map_err(|e| e.public());
        lock(&self.probes).insert(
            path.to_path_buf(),
            Probe {
                stamp,
                meta: meta.clone(),
            },
        );
        meta
    }

    /// How much of `path` is indexed: from its running job, else from its cache file.
    fn indexed(&self, id: &str, path: &Path, meta: &Metadata) -> Indexed {
        if let Some(session) = lock(&self.sessions).get(id) {
            let status = session.index.status();
            return match status.state {
                IndexState::Done => Indexed::Yes,
                _ if status.done > 0 => Indexed::Partly,
                _ => Indexed::No,
            };
        }
        let Some(model) = self.models[0].model.ready() else {
            return Indexed::No;
        };
        let Ok(video) = VideoToIndex::with_metadata(path, meta.clone()) else {
            return Indexed::No;
        };
        let header = video.header(model.as_ref(), self.index_options.sample_fps);
        let file = self
            .index_options
            .cache_dir
            .join(EmbeddingFile::file_name_skipping(
                &header,
                self.index_options.skip_similar,
            ));
        let Some(stamp) = stamp(&file) else {
            return Indexed::No;
        };
        if let Some((known, indexed)) = lock(&self.cache_states).get(&file) {
            if *known == stamp {
                return *indexed;
            }
        }
        let indexed = match EmbeddingFile::peek(&file) {
            Ok(cached) if cached.header.video == header.video && !cached.frames.is_empty() => {
                let planned = app::scores::sampled_frames(
                    cached.header.video_frames,
                    cached.header.video_fps_micros as f64 / 1e6,
                    self.index_options.sample_fps,
                )
                .len();
                if cached.covered() >= planned {
                    Indexed::Yes
                } else {
                    Indexed::Partly
                }
            }
            _ => Indexed::No,
        };
        lock(&self.cache_states).insert(file, (stamp, indexed));
        indexed
    }
}

/// When a file last changed, and its size: a memo of what was read from it holds while these do.
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    ))
}

/// `path` resolved, if it is a regular file inside `root` (which is resolved already).
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let resolved = path.canonicalize().ok()?;
    (resolved.starts_with(root) && resolved.is_file()).then_some(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_that_could_leave_the_folder_are_refused() {
        for bad in [
            "",
            "../escape.mp4",
            "..\\escape.mp4",
            "/etc/escape.mp4",
            "a/b.mp4",
            "%2e%2e%2fescape.mp4",
            "..%2fescape.mp4",
            "nul\0byte.mp4",
            ".hidden.mp4",
            "..",
            "notes.txt",
            "video",
            "C:escape.mp4",
            &format!("{}.mp4", "a".repeat(300)),
        ] {
            assert!(check_upload_name(bad).is_err(), "accepted {bad:?}");
        }
        for good in ["holiday.mp4", "Clip 2 (final).MKV", "été.webm"] {
            assert_eq!(check_upload_name(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn model_ids_come_from_repo_or_folder_names_and_stay_distinct() {
        let choices = model_choices(&[
            "openai/clip-vit-base-patch32@refs/pr/15".into(),
            "/models/My CLIP".into(),
            "laion/My-CLIP".into(),
            "/other/My CLIP".into(),
        ]);
        let ids: Vec<&str> = choices.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["clip-vit-base-patch32", "my-clip", "my-clip-2", "my-clip-3"]
        );
        assert!(ids.iter().all(|id| app::types::is_valid_model_id(id)));
        // The page sees a folder's name, never where it is.
        assert_eq!(choices[1].label, "My CLIP");
        assert_eq!(choices[2].label, "laion/My-CLIP");
    }

    #[test]
    fn ids_are_hex_of_the_path_and_stable() {
        let id = video_id(Path::new("/videos/a.mp4"));
        assert!(app::types::is_valid_video_id(&id), "{id}");
        assert_eq!(id, video_id(Path::new("/videos/a.mp4")));
        assert_ne!(id, video_id(Path::new("/videos/b.mp4")));
    }
}
