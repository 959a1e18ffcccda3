//! The display proxy: the video again at display size with a keyframe every [`PROXY_GOP`]
//! frames, so that showing any frame decodes at most `PROXY_GOP - 1` small pictures before it
//! instead of up to a whole source GOP (250 full-size pictures in a common camera file). It is
//! made in independent segments of [`SEGMENT_FRAMES`] frames, each usable as soon as it is
//! written, so the parts viewers look at can be made first.
//!
//! Invariants:
//! - packet i of segment k is source frame `k * SEGMENT_FRAMES + i`, by construction: the
//!   writer is given the exact [`Decoder`]'s pictures in frame order, encodes one picture per
//!   frame with no B-frames (nothing is reordered or dropped), and checks one packet per frame
//!   with pts i;
//! - each segment is one file written atomically (temporary file, fsync, rename), checksummed,
//!   and used only when it names this video's content fingerprint, its own number and the
//!   frame index's timestamps of its frames: a torn or stale segment is never used (it is
//!   removed and made again);
//! - a segment starts with a keyframe (a fresh encoder per segment), so it decodes on its own;
//! - what the model embeds never comes from here: the proxy is for the eyes.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;
use opencv::core::Mat;
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

use super::convert::Converter;
use super::{Decoder, FrameIndex, VideoError};
use crate::sync::lock;

/// At most this many frames from one keyframe to the next.
pub const PROXY_GOP: u64 = 15;

/// Frames in one segment (the last may have fewer): 4 s at 30 fps, eight keyframes.
pub const SEGMENT_FRAMES: u64 = 8 * PROXY_GOP;

/// Version of the segment files' layout.
const SEGMENT_VERSION: u32 = 2;

/// H.264 at this constant rate factor: at display size, hard to tell from the source.
const PROXY_CRF: &str = "20";

/// Segments kept read in memory for the proxy decoders (a few hundred KB each).
const LOADED_SEGMENTS: usize = 24;

/// The file holding the source's path, so that the proxy of an older content of the same file
/// can be found and removed.
const SOURCE_FILE: &str = "source-path";

/// One segment on disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SegmentFile {
    /// First field (see `store::cache::read_versioned`).
    format_version: u32,
    video: store::cache::VideoFingerprint,
    segment: u64,
    width: u32,
    height: u32,
    /// The FFmpeg encoder that wrote it (its decoder reads it).
    codec: String,
    /// The source frame index's timestamp of each of its frames.
    source_pts: Vec<i64>,
    /// Offset of each frame's packet in `packets`; one more at the end (its length).
    offsets: Vec<u64>,
    /// Frames (from the segment's first) whose packet is a keyframe, ascending, 0 first.
    keyframes: Vec<u64>,
    packets: Vec<u8>,
}

/// A segment read and checked, shared by the proxy decoders.
pub struct Segment {
    file: SegmentFile,
    first: u64,
}

impl Segment {
    pub fn first(&self) -> u64 {
        self.first
    }

    pub fn frames(&self) -> u64 {
        self.file.source_pts.len() as u64
    }

    pub fn width(&self) -> u32 {
        self.file.width
    }

    pub fn size(&self) -> (u32, u32) {
        (self.file.width, self.file.height)
    }

    /// The keyframe at or before frame `n` (of the video; `n` in this segment).
    pub fn keyframe_for(&self, n: u64) -> u64 {
        let k = &self.file.keyframes;
        let r = n - self.first;
        self.first + k[k.partition_point(|&f| f <= r).saturating_sub(1)]
    }

    fn packet(&self, n: u64) -> ffmpeg::Packet {
        let r = (n - self.first) as usize;
        let (start, end) = (
            self.file.offsets[r] as usize,
            self.file.offsets[r + 1] as usize,
        );
        ffmpeg::Packet::copy(&self.file.packets[start..end])
    }
}

/// What making a segment took.
#[derive(Clone, Debug)]
pub struct SegmentReport {
    pub segment: u64,
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub codec: String,
    /// Source pictures decoded to make it (those before its first frame included).
    pub pictures_decoded: u64,
}

/// The frames of segment `k` of a video of `frames` frames.
pub fn segment_frames(k: u64, frames: u64) -> Range<u64> {
    (k * SEGMENT_FRAMES).min(frames)..((k + 1) * SEGMENT_FRAMES).min(frames)
}

/// The segment frame `n` lies in.
pub fn segment_of(n: u64) -> u64 {
    n / SEGMENT_FRAMES
}

/// How many segments a video of `frames` frames has.
pub fn segment_count(frames: u64) -> u64 {
    frames.div_ceil(SEGMENT_FRAMES)
}

/// The proxy's size for a source shown at `display` (upright) and a width limit (0: none):
/// both even, as 4:2:0 pictures need.
pub fn proxy_size(display: (u32, u32), max_width: u32) -> (u32, u32) {
    let (w, h) = display;
    let width = if max_width > 0 && w > max_width {
        max_width
    } else {
        w
    };
    let height = (f64::from(h) * f64::from(width) / f64::from(w.max(1))).round() as u32;
    ((width & !1).max(2), (height & !1).max(2))
}

/// Whether a proxy is worth making: keyframes more than twice as far apart as the proxy's
/// on average (closer, a seek in the source costs little more than one in the proxy).
pub fn proxy_helps(frame_index: &FrameIndex) -> bool {
    frame_index.frames() > frame_index.keyframes().max(1) * 2 * PROXY_GOP
}

/// The segments of one video's proxy in its folder: which exist and at what width, and those
/// read lately.
pub struct ProxySegments {
    folder: PathBuf,
    frame_index: Arc<FrameIndex>,
    /// Width of each segment on disk (0: not made).
    widths: Mutex<Vec<u32>>,
    loaded: Mutex<VecDeque<Arc<Segment>>>,
}

impl ProxySegments {
    /// The proxy folder of the video at `source` (with this frame index) in `cache_dir`: lists
    /// the segments there, removes temporary files of killed writes, and removes the proxy
    /// of an earlier content of the same file. Segments are checked when read.
    pub fn open(
        cache_dir: &Path,
        source: &Path,
        frame_index: Arc<FrameIndex>,
    ) -> std::io::Result<Arc<Self>> {
        let fingerprint = frame_index.fingerprint();
        let name = format!("proxy-{}-{}", fingerprint.short(), fingerprint.size);
        let folder = cache_dir.join(&name);
        std::fs::create_dir_all(&folder)?;
        let source_text = source.to_string_lossy().into_owned();
        remove_older_contents(cache_dir, &name, &source_text);
        store::cache::write_atomically(&folder.join(SOURCE_FILE), source_text.as_bytes())?;
        let count = segment_count(frame_index.frames()) as usize;
        let mut widths = vec![0u32; count];
        for entry in std::fs::read_dir(&folder)?.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if name.starts_with('.') && name.contains(".tmp-") {
                // A write killed before its rename: never a segment.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            if let Some((k, width)) = parse_segment_name(name) {
                match widths.get_mut(k as usize) {
                    Some(w) if *w < width => *w = width,
                    Some(_) => {}
                    None => {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
        }
        Ok(Arc::new(Self {
            folder,
            frame_index,
            widths: Mutex::new(widths),
            loaded: Mutex::new(VecDeque::new()),
        }))
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }

    pub fn frame_index(&self) -> &Arc<FrameIndex> {
        &self.frame_index
    }

    pub fn count(&self) -> u64 {
        lock(&self.widths).len() as u64
    }

    /// The width segment `k` was made at (0: not made).
    pub fn width_of(&self, k: u64) -> u32 {
        lock(&self.widths).get(k as usize).copied().unwrap_or(0)
    }

    /// Frames in segments made at `width` or wider.
    pub fn frames_covered(&self, width: u32) -> u64 {
        let frames = self.frame_index.frames();
        lock(&self.widths)
            .iter()
            .enumerate()
            .filter(|(_, &w)| w > 0 && w >= width)
            .map(|(k, _)| {
                let r = segment_frames(k as u64, frames);
                r.end - r.start
            })
            .sum()
    }

    /// Segment `k` if it is made at `width` or wider and reads back whole; a segment that does
    /// not is removed (it will be made again).
    pub fn segment(&self, k: u64, width: u32) -> Option<Arc<Segment>> {
        let made = self.width_of(k);
        if made == 0 || made < (width & !1).max(2) {
            return None;
        }
        {
            let mut loaded = lock(&self.loaded);
            if let Some(i) = loaded
                .iter()
                .position(|s| s.first == k * SEGMENT_FRAMES && s.width() == made)
            {
                let segment = loaded.remove(i).expect("found above");
                loaded.push_back(Arc::clone(&segment));
                return Some(segment);
            }
        }
        let path = self.path_of(k, made);
        let checked = match store::cache::read_versioned::<SegmentFile>(&path, SEGMENT_VERSION) {
            Ok(Some(file)) => self.check(k, made, file),
            Ok(None) => Err("it is gone".to_string()),
            Err(e) => Err(e.to_string()),
        };
        match checked {
            Ok(segment) => {
                let segment = Arc::new(segment);
                let mut loaded = lock(&self.loaded);
                loaded.push_back(Arc::clone(&segment));
                while loaded.len() > LOADED_SEGMENTS {
                    loaded.pop_front();
                }
                Some(segment)
            }
            Err(reason) => {
                tracing::warn!(
                    "display proxy segment {} is not usable ({reason}); it will be made again",
                    path.display()
                );
                let _ = std::fs::remove_file(&path);
                let mut widths = lock(&self.widths);
                if widths.get(k as usize) == Some(&made) {
                    widths[k as usize] = 0;
                }
                None
            }
        }
    }

    fn check(&self, k: u64, width: u32, file: SegmentFile) -> Result<Segment, String> {
        let range = segment_frames(k, self.frame_index.frames());
        let frames = (range.end - range.start) as usize;
        let pts = &self.frame_index.timestamps()[range.start as usize..range.end as usize];
        let spaced = file.keyframes.first() == Some(&0)
            && file
                .keyframes
                .windows(2)
                .all(|w| w[0] < w[1] && w[1] - w[0] <= PROXY_GOP)
            && file
                .keyframes
                .last()
                .is_some_and(|&last| last < frames as u64 && frames as u64 - last <= PROXY_GOP);
        let whole = file.offsets.len() == frames + 1
            && file.offsets.first() == Some(&0)
            && file.offsets.windows(2).all(|w| w[0] <= w[1])
            && file.offsets.last() == Some(&(file.packets.len() as u64));
        if file.video != *self.frame_index.fingerprint() {
            return Err("it was made from another content of the video".into());
        }
        if file.segment != k || file.width != width || file.source_pts != pts {
            return Err("its frames are not this segment's".into());
        }
        if !spaced || !whole {
            return Err("its packets are not laid out as written".into());
        }
        Ok(Segment {
            file,
            first: range.start,
        })
    }

    fn path_of(&self, k: u64, width: u32) -> PathBuf {
        self.folder.join(segment_name(k, width))
    }

    /// Makes segment `k` at `width` (even; the height follows the picture) from `decoder`'s
    /// frames, and writes it atomically; a narrower one made before is removed. `turn` is
    /// called before each frame and returns false to give up (the video was closed).
    pub fn make(
        &self,
        k: u64,
        width: u32,
        decoder: &mut Decoder,
        turn: &dyn Fn() -> bool,
    ) -> Result<Option<SegmentReport>, VideoError> {
        let decoded_before = decoder.pictures_decoded();
        let mut recorder = self.recorder(k, width)?;
        // Upright pictures go to the encoder as the decoder gives them (one conversion, to
        // the proxy's size); turned ones through upright BGR.
        let as_stored = self.frame_index.facts.rotation == 0;
        while let Some(n) = recorder.next_frame() {
            if !turn() {
                return Ok(None);
            }
            if as_stored {
                let picture = decoder.picture(n)?;
                recorder.push_picture(picture)?;
            } else {
                let image = decoder.frame(n)?;
                recorder.push(&image)?;
            }
        }
        let mut report = self.finish(recorder)?;
        report.pictures_decoded = decoder.pictures_decoded() - decoded_before;
        Ok(Some(report))
    }

    /// A recorder of segment `k` at `width`, to be given the segment's frames in order (by
    /// whoever decodes them: the builder, or indexing on its way) and then [`finish`]ed.
    ///
    /// [`finish`]: Self::finish
    pub fn recorder(&self, k: u64, width: u32) -> Result<SegmentRecorder, VideoError> {
        let frames = segment_frames(k, self.frame_index.frames());
        let (width, height) = proxy_size(self.frame_index.facts.display_size(), width);
        let writer = SegmentWriter::new(width, height).map_err(|reason| self.failed(k, reason))?;
        Ok(SegmentRecorder {
            k,
            frames,
            next: None,
            writer,
            folder: self.folder.clone(),
        })
    }

    /// Writes a recorder's segment, whole, atomically; a narrower one made before is removed.
    pub fn finish(&self, recorder: SegmentRecorder) -> Result<SegmentReport, VideoError> {
        let SegmentRecorder {
            k, frames, writer, ..
        } = recorder;
        let (width, height) = (writer.yuv.width(), writer.yuv.height());
        let pts = &self.frame_index.timestamps()[frames.start as usize..frames.end as usize];
        let file = writer
            .finish(self.frame_index.fingerprint(), k, pts)
            .map_err(|reason| self.failed(k, reason))?;
        let report = SegmentReport {
            segment: k,
            frames: frames.end - frames.start,
            width,
            height,
            bytes: file.packets.len() as u64,
            codec: file.codec.clone(),
            pictures_decoded: 0,
        };
        store::cache::write_versioned(&self.path_of(k, width), &file)
            .map_err(|e| self.failed(k, e.to_string()))?;
        let before = {
            let mut widths = lock(&self.widths);
            let slot = &mut widths[k as usize];
            std::mem::replace(slot, width)
        };
        if before != 0 && before != width {
            let _ = std::fs::remove_file(self.path_of(k, before));
        }
        Ok(report)
    }

    fn failed(&self, k: u64, reason: String) -> VideoError {
        VideoError::ProxySegment {
            path: self.folder.clone(),
            segment: k,
            reason,
        }
    }
}

// SAFETY: the recorder owns its FFmpeg encoder and scaling contexts alone (nothing else points
// to them) and `&mut self` methods are its only way to use them, so it is used by one thread at
// a time; FFmpeg's contexts are not tied to the thread that made them.
unsafe impl Send for SegmentRecorder {}

/// A segment being recorded: its frames are pushed in order, each once.
pub struct SegmentRecorder {
    k: u64,
    frames: Range<u64>,
    /// Frames pushed so far end before this one (`None`: none pushed).
    next: Option<u64>,
    writer: SegmentWriter,
    folder: PathBuf,
}

impl SegmentRecorder {
    pub fn segment(&self) -> u64 {
        self.k
    }

    /// The frame to push next; `None` once the segment is whole.
    pub fn next_frame(&self) -> Option<u64> {
        let next = self.next.unwrap_or(self.frames.start);
        (next < self.frames.end).then_some(next)
    }

    fn pushed(&mut self) {
        self.next = Some(self.next.unwrap_or(self.frames.start) + 1);
    }

    fn failed(&self, reason: String) -> VideoError {
        VideoError::ProxySegment {
            path: self.folder.clone(),
            segment: self.k,
            reason,
        }
    }

    /// Pushes the next frame as upright BGR at any size.
    pub fn push(&mut self, image: &Mat) -> Result<(), VideoError> {
        self.writer.push(image).map_err(|r| self.failed(r))?;
        self.pushed();
        Ok(())
    }

    /// Pushes the next frame as the decoder gave it (upright: the video is not rotated).
    pub fn push_picture(&mut self, picture: &ffmpeg::frame::Video) -> Result<(), VideoError> {
        self.writer
            .push_picture(picture)
            .map_err(|r| self.failed(r))?;
        self.pushed();
        Ok(())
    }
}

fn segment_name(k: u64, width: u32) -> String {
    format!("{k:06}-w{width}.segment")
}

/// `(k, width)` of a segment file's name.
fn parse_segment_name(name: &str) -> Option<(u64, u32)> {
    let (k, rest) = name.strip_suffix(".segment")?.split_once("-w")?;
    Some((k.parse().ok()?, rest.parse().ok()?))
}

/// Removes the proxy folders in `cache_dir` other than `keep` made from `source` (an earlier
/// content of the file: its frames are not the file's any more).
fn remove_older_contents(cache_dir: &Path, keep: &str, source: &str) {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("proxy-") || name == keep {
            continue;
        }
        let recorded = std::fs::read(entry.path().join(SOURCE_FILE)).unwrap_or_default();
        if recorded == source.as_bytes() {
            tracing::info!("removing the display proxy of an earlier content of {source}");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Encodes pictures one per frame into a segment's packets, keeping its table.
struct SegmentWriter {
    encoder: ffmpeg::encoder::Video,
    codec: String,
    scaler: Option<ffmpeg::software::scaling::Context>,
    picture_scaler: Option<ffmpeg::software::scaling::Context>,
    bgr: Option<ffmpeg::frame::Video>,
    yuv: ffmpeg::frame::Video,
    packet: ffmpeg::Packet,
    packets: Vec<u8>,
    offsets: Vec<u64>,
    keyframes: Vec<u64>,
    pushed: u64,
}

impl SegmentWriter {
    fn new(width: u32, height: u32) -> Result<Self, String> {
        // libx264 where FFmpeg has it (Debian's does); else FFmpeg's own MPEG-4 part 2.
        let (codec, name) = match ffmpeg::encoder::find_by_name("libx264") {
            Some(c) => (c, "libx264"),
            None => (
                ffmpeg::encoder::find(ffmpeg::codec::Id::MPEG4)
                    .ok_or("FFmpeg has neither libx264 nor an MPEG-4 encoder")?,
                "mpeg4",
            ),
        };
        let mut context = ffmpeg::codec::Context::new_with_codec(codec);
        // SAFETY: a fresh, unopened context of our own; one thread, so the builder takes one
        // core at most and gives every packet back before the next frame.
        unsafe {
            (*context.as_mut_ptr()).thread_count = 1;
        }
        let mut encoder = context.encoder().video().map_err(|e| e.to_string())?;
        encoder.set_width(width);
        encoder.set_height(height);
        encoder.set_format(Pixel::YUV420P);
        encoder.set_time_base((1, 30));
        encoder.set_gop(PROXY_GOP as u32);
        encoder.set_max_b_frames(0);
        let mut options = ffmpeg::Dictionary::new();
        if name == "libx264" {
            // Made while viewers wait for it: the fastest preset (larger segments, same
            // quality at this rate factor).
            options.set("preset", "ultrafast");
            // No lookahead or frame threads: one packet out for each picture in; and no CABAC
            // or deblocking, so that decoding it for a seek is quick.
            options.set("tune", "zerolatency,fastdecode");
            options.set("crf", PROXY_CRF);
        } else {
            options.set("flags", "+qscale");
            options.set("global_quality", "354"); // q 3 (x FF_QP2LAMBDA)
        }
        let encoder = encoder
            .open_with(options)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(Self {
            encoder,
            codec: name.to_string(),
            scaler: None,
            picture_scaler: None,
            bgr: None,
            yuv: ffmpeg::frame::Video::new(Pixel::YUV420P, width, height),
            packet: ffmpeg::Packet::empty(),
            packets: Vec::new(),
            offsets: Vec::new(),
            keyframes: Vec::new(),
            pushed: 0,
        })
    }

    /// Encodes the segment's next frame (upright BGR at any size).
    fn push(&mut self, image: &Mat) -> Result<(), String> {
        let (w, h) = (image.cols() as u32, image.rows() as u32);
        let bgr = match &mut self.bgr {
            Some(frame) if frame.width() == w && frame.height() == h => frame,
            slot => slot.insert(ffmpeg::frame::Video::new(Pixel::BGR24, w, h)),
        };
        let stride = bgr.stride(0);
        let row = w as usize * 3;
        let data = image.data_bytes().map_err(|e| e.to_string())?;
        let plane = bgr.data_mut(0);
        for y in 0..h as usize {
            plane[y * stride..y * stride + row].copy_from_slice(&data[y * row..(y + 1) * row]);
        }
        let scaler = match &mut self.scaler {
            Some(s) if s.input().width == w && s.input().height == h => s,
            slot => slot.insert(
                ffmpeg::software::scaling::Context::get(
                    Pixel::BGR24,
                    w,
                    h,
                    Pixel::YUV420P,
                    self.yuv.width(),
                    self.yuv.height(),
                    ffmpeg::software::scaling::Flags::AREA,
                )
                .map_err(|e| e.to_string())?,
            ),
        };
        scaler.run(bgr, &mut self.yuv).map_err(|e| e.to_string())?;
        self.send()
    }

    /// Encodes the segment's next frame from a decoded picture (upright, any format and size),
    /// scaled and converted in one pass.
    fn push_picture(&mut self, picture: &ffmpeg::frame::Video) -> Result<(), String> {
        let (format, w, h) = (picture.format(), picture.width(), picture.height());
        let scaler = match &mut self.picture_scaler {
            Some(s)
                if s.input().format == format && s.input().width == w && s.input().height == h =>
            {
                s
            }
            slot => slot.insert(
                ffmpeg::software::scaling::Context::get(
                    format,
                    w,
                    h,
                    Pixel::YUV420P,
                    self.yuv.width(),
                    self.yuv.height(),
                    ffmpeg::software::scaling::Flags::AREA,
                )
                .map_err(|e| e.to_string())?,
            ),
        };
        scaler
            .run(picture, &mut self.yuv)
            .map_err(|e| e.to_string())?;
        self.send()
    }

    /// Sends `self.yuv` as the next frame.
    fn send(&mut self) -> Result<(), String> {
        self.yuv.set_pts(Some(self.pushed as i64));
        self.pushed += 1;
        self.encoder
            .send_frame(&self.yuv)
            .map_err(|e| e.to_string())?;
        self.drain()
    }

    fn drain(&mut self) -> Result<(), String> {
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    let i = self.offsets.len() as u64;
                    if self.packet.pts() != Some(i as i64) {
                        return Err(format!(
                            "the encoder gave packet {i} the time {:?}: frames would not line up",
                            self.packet.pts()
                        ));
                    }
                    if self.packet.is_key() {
                        self.keyframes.push(i);
                    }
                    self.offsets.push(self.packets.len() as u64);
                    self.packets
                        .extend_from_slice(self.packet.data().unwrap_or(&[]));
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn finish(
        mut self,
        video: &store::cache::VideoFingerprint,
        segment: u64,
        source_pts: &[i64],
    ) -> Result<SegmentFile, String> {
        self.encoder.send_eof().map_err(|e| e.to_string())?;
        self.drain()?;
        if self.offsets.len() != source_pts.len() {
            return Err(format!(
                "{} packets for {} frames",
                self.offsets.len(),
                source_pts.len()
            ));
        }
        self.offsets.push(self.packets.len() as u64);
        let frames = source_pts.len() as u64;
        let spaced = self.keyframes.first() == Some(&0)
            && self.keyframes.windows(2).all(|w| w[1] - w[0] <= PROXY_GOP)
            && self
                .keyframes
                .last()
                .is_some_and(|&k| frames - k <= PROXY_GOP);
        if !spaced {
            return Err("the encoder did not place a keyframe every 15 frames".into());
        }
        Ok(SegmentFile {
            format_version: SEGMENT_VERSION,
            video: video.clone(),
            segment,
            width: self.yuv.width(),
            height: self.yuv.height(),
            codec: self.codec,
            source_pts: source_pts.to_vec(),
            offsets: self.offsets,
            keyframes: self.keyframes,
            packets: self.packets,
        })
    }
}

/// Reads frames of a proxy's segments; stays positioned after the last frame it read, so
/// playing forward decodes on.
pub struct ProxyDecoder {
    codec: ffmpeg::decoder::Video,
    converter: Converter,
    picture: ffmpeg::frame::Video,
    /// The segment it reads now.
    segment: Option<Arc<Segment>>,
    /// The next packet to send (a frame of the video).
    fed: u64,
    /// The frame the next picture out of the decoder is.
    out: u64,
    /// Pictures decoded since opening.
    decoded: u64,
    /// The frame `picture` holds, if it holds one.
    holds: Option<u64>,
    /// Where error messages say the frames come from.
    folder: PathBuf,
}

impl ProxyDecoder {
    /// A decoder of the segments of `proxy`.
    pub fn new(proxy: &ProxySegments) -> Result<Self, VideoError> {
        let folder = proxy.folder.clone();
        let failed = |e: ffmpeg::Error| VideoError::Codec {
            path: folder.clone(),
            reason: e.to_string(),
        };
        // Segments are written with libx264 where FFmpeg has it, else MPEG-4 part 2.
        let id = if ffmpeg::encoder::find_by_name("libx264").is_some() {
            ffmpeg::codec::Id::H264
        } else {
            ffmpeg::codec::Id::MPEG4
        };
        let codec = ffmpeg::decoder::find(id).ok_or(ffmpeg::Error::DecoderNotFound);
        let mut context = ffmpeg::codec::Context::new_with_codec(codec.map_err(failed)?);
        // SAFETY: a fresh, unopened context of our own. One thread and low delay: a picture
        // comes out for each packet sent, so the n-th picture out is packet n.
        unsafe {
            let raw = context.as_mut_ptr();
            (*raw).thread_count = 1;
            (*raw).flags |= ffmpeg::ffi::AV_CODEC_FLAG_LOW_DELAY as i32;
        }
        let codec = context.decoder().video().map_err(failed)?;
        Ok(Self {
            codec,
            converter: Converter::new(0),
            picture: ffmpeg::frame::Video::empty(),
            segment: None,
            fed: 0,
            out: 0,
            decoded: 0,
            holds: None,
            folder,
        })
    }

    pub fn pictures_decoded(&self) -> u64 {
        self.decoded
    }

    /// The pictures decoding on to frame `n` of `segment` from here passes, where that is no
    /// more work than starting at its keyframe (same segment, not behind, no keyframe in
    /// between); `None` otherwise.
    pub fn reach(&self, segment: &Arc<Segment>, n: u64) -> Option<u64> {
        let same = self
            .segment
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, segment));
        if !same {
            return None;
        }
        if self.holds == Some(n) {
            return Some(0);
        }
        (self.out <= n && segment.keyframe_for(n) <= self.out).then(|| n - self.out)
    }

    /// Exactly frame `n` (which `segment` holds) as BGR, `width` wide at most (the aspect
    /// kept), converted from the decoder's YUV planes and scaled in one pass.
    pub fn frame_at_width(
        &mut self,
        segment: &Arc<Segment>,
        n: u64,
        width: u32,
    ) -> Result<Mat, VideoError> {
        self.decode(segment, n)?;
        let (w, h) = segment.size();
        let width = width.clamp(1, w);
        let height = ((f64::from(h) * f64::from(width) / f64::from(w)).round() as u32).max(1);
        let folder = &self.folder;
        self.converter
            .bgr_at(&self.picture, width, height)
            .map_err(|reason| VideoError::Decode {
                path: folder.clone(),
                frame: n,
                reason,
            })
    }

    /// Leaves frame `n`'s picture in `self.picture`.
    fn decode(&mut self, segment: &Arc<Segment>, n: u64) -> Result<(), VideoError> {
        let end = segment.first + segment.frames();
        if n < segment.first || n >= end {
            return Err(VideoError::OutOfRange {
                frame: n,
                frames: end,
            });
        }
        let same = self
            .segment
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, segment));
        if same && self.holds == Some(n) {
            return Ok(());
        }
        self.holds = None;
        let key = segment.keyframe_for(n);
        // Decode on where n is ahead in the same run of pictures, else start at its keyframe.
        if !same || n < self.out || key > self.out {
            self.codec.flush();
            self.segment = Some(Arc::clone(segment));
            self.fed = key;
            self.out = key;
        }
        let error = |reason: String| VideoError::Decode {
            path: self.folder.clone(),
            frame: n,
            reason,
        };
        let mut ended = false;
        loop {
            match self.codec.receive_frame(&mut self.picture) {
                Ok(()) => {
                    self.decoded += 1;
                    self.out += 1;
                    if self.out == n + 1 {
                        self.holds = Some(n);
                        return Ok(());
                    }
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    if self.fed < end {
                        let packet = segment.packet(self.fed);
                        self.fed += 1;
                        // A packet the decoder refuses shows up as a missing picture below.
                        let _ = self.codec.send_packet(&packet);
                    } else if !ended {
                        ended = true;
                        let _ = self.codec.send_eof();
                    } else {
                        self.segment = None;
                        return Err(error("the display proxy segment ended early".into()));
                    }
                }
                Err(e) => {
                    // Start over at the keyframe next time.
                    self.segment = None;
                    return Err(error(e.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_every_frame_once() {
        assert_eq!(segment_count(0), 0);
        assert_eq!(segment_count(1), 1);
        assert_eq!(segment_count(SEGMENT_FRAMES), 1);
        assert_eq!(segment_count(SEGMENT_FRAMES + 1), 2);
        let frames = 1000;
        let mut next = 0;
        for k in 0..segment_count(frames) {
            let r = segment_frames(k, frames);
            assert_eq!(r.start, next);
            assert!(r.end > r.start && r.end - r.start <= SEGMENT_FRAMES);
            for n in r.clone() {
                assert_eq!(segment_of(n), k);
            }
            next = r.end;
        }
        assert_eq!(next, frames);
    }

    #[test]
    fn segment_names_read_back() {
        assert_eq!(segment_name(12, 640), "000012-w640.segment");
        assert_eq!(parse_segment_name("000012-w640.segment"), Some((12, 640)));
        assert_eq!(parse_segment_name(".000012-w640.segment.tmp-1-0"), None);
        assert_eq!(parse_segment_name("source-path"), None);
    }
}
