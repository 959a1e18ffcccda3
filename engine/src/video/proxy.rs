//! The display proxy: the video again at display size with a keyframe every [`PROXY_GOP`]
//! frames, so that showing any frame decodes at most `PROXY_GOP - 1` small pictures before it
//! instead of up to a whole source GOP (250 full-size pictures in a common camera file).
//!
//! Invariants:
//! - packet n of the proxy is source frame n, by construction: the builder reads the source in
//!   frame order with the exact [`Decoder`], encodes one picture per frame with no B-frames
//!   (nothing is reordered or dropped), and checks one packet per frame with pts n;
//! - a proxy is used only when its table matches the frame index it is opened with (content
//!   fingerprint, frame count, every source timestamp); otherwise it is ignored (and rebuilt);
//! - the packets file is complete before its table is written (each written atomically), so a
//!   killed build leaves no proxy, only a temporary file that the next build removes;
//! - what the model embeds never comes from here: the proxy is for the eyes.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ffmpeg::format::Pixel;
use ffmpeg_next as ffmpeg;
use opencv::core::Mat;
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

use super::convert::Converter;
use super::{Decoder, FrameIndex, VideoError};

/// At most this many frames from one keyframe to the next.
pub const PROXY_GOP: u64 = 15;

/// Version of the table file's layout.
const PROXY_VERSION: u32 = 1;

/// H.264 at this constant rate factor: at display size, hard to tell from the source.
const PROXY_CRF: &str = "20";

/// Where the proxy sits in the packets file, and what it must match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ProxyTable {
    /// First field (see `store::cache::read_versioned`).
    format_version: u32,
    video: store::cache::VideoFingerprint,
    width: u32,
    height: u32,
    /// The FFmpeg encoder that wrote it (its decoder reads it).
    codec: String,
    /// The source frame index's timestamp of each frame.
    source_pts: Vec<i64>,
    /// Offset of each frame's packet; one more at the end (the file's length).
    offsets: Vec<u64>,
    /// Frames whose packet is a keyframe, ascending, 0 first.
    keyframes: Vec<u64>,
}

/// A finished proxy, opened for reading (shared by every viewer's [`ProxyDecoder`]).
pub struct Proxy {
    table: ProxyTable,
    packets: File,
    path: PathBuf,
}

/// What building a proxy took.
#[derive(Clone, Debug)]
pub struct ProxyReport {
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub codec: String,
}

/// The proxy's file names in `dir` for a video with this frame index and display width.
fn proxy_paths(dir: &Path, frame_index: &FrameIndex, width: u32) -> (PathBuf, PathBuf) {
    let base = format!(
        "{}-{}-w{width}",
        frame_index.fingerprint().short(),
        frame_index.fingerprint().size
    );
    (
        dir.join(format!("{base}.proxy")),
        dir.join(format!("{base}.proxy-table")),
    )
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

impl Proxy {
    /// The proxy of this video in `dir`, if a complete one that matches `frame_index` is there.
    pub fn open(dir: &Path, frame_index: &FrameIndex, max_width: u32) -> Option<Arc<Self>> {
        let (width, _) = proxy_size(frame_index.facts.display_size(), max_width);
        let (packets_path, table_path) = proxy_paths(dir, frame_index, width);
        let table: ProxyTable = match store::cache::read_versioned(&table_path, PROXY_VERSION) {
            Ok(Some(table)) => table,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("{e}; the display proxy will be made again");
                return None;
            }
        };
        let packets = File::open(&packets_path).ok()?;
        let length = packets.metadata().ok()?.len();
        let matches = table.video == *frame_index.fingerprint()
            && table.source_pts == frame_index.timestamps()
            && table.offsets.len() == table.source_pts.len() + 1
            && table.offsets.windows(2).all(|w| w[0] <= w[1])
            && table.offsets.last() == Some(&length)
            && table.keyframes.first() == Some(&0)
            && table
                .keyframes
                .windows(2)
                .all(|w| w[0] < w[1] && w[1] - w[0] <= PROXY_GOP)
            && table
                .keyframes
                .last()
                .is_some_and(|&k| frame_index.frames() - k <= PROXY_GOP);
        if !matches {
            tracing::warn!(
                "{} does not match its video's frame index; it will be made again",
                packets_path.display()
            );
            return None;
        }
        Some(Arc::new(Self {
            table,
            packets,
            path: packets_path,
        }))
    }

    pub fn frames(&self) -> u64 {
        self.table.source_pts.len() as u64
    }

    pub fn size(&self) -> (u32, u32) {
        (self.table.width, self.table.height)
    }

    /// The keyframe at or before frame `n`.
    fn keyframe_for(&self, n: u64) -> u64 {
        let k = &self.table.keyframes;
        k[k.partition_point(|&f| f <= n).saturating_sub(1)]
    }

    fn packet(&self, n: u64) -> std::io::Result<ffmpeg::Packet> {
        let (start, end) = (
            self.table.offsets[n as usize],
            self.table.offsets[n as usize + 1],
        );
        let mut bytes = vec![0u8; (end - start) as usize];
        self.packets.read_exact_at(&mut bytes, start)?;
        Ok(ffmpeg::Packet::copy(&bytes))
    }

    /// Builds the proxy of `source` into `dir` (nothing if a matching one is there), reading
    /// the source in frame order. `turn` is called before each frame: it may wait (background
    /// priority) and returns false to stop (the video was closed).
    pub fn build(
        source: &Path,
        frame_index: Arc<FrameIndex>,
        dir: &Path,
        max_width: u32,
        turn: &dyn Fn() -> bool,
    ) -> Result<Option<ProxyReport>, VideoError> {
        if Self::open(dir, &frame_index, max_width).is_some() {
            return Ok(None);
        }
        let (width, height) = proxy_size(frame_index.facts.display_size(), max_width);
        let (packets_path, table_path) = proxy_paths(dir, &frame_index, width);
        store::cache::remove_stale_temporaries(&packets_path);
        let failed = |reason: String| VideoError::Codec {
            path: source.to_path_buf(),
            reason: format!("cannot make its display proxy: {reason}"),
        };
        let temporary = dir.join(format!(
            ".{}.tmp-{}-0",
            packets_path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("proxy"),
            std::process::id()
        ));
        let result = (|| {
            let mut decoder = Decoder::with_index(source, Arc::clone(&frame_index))?;
            let mut writer = ProxyWriter::new(&temporary, width, height).map_err(&failed)?;
            for n in 0..frame_index.frames() {
                if !turn() {
                    return Ok(None);
                }
                let image = decoder.frame(n)?;
                writer.push(&image, n).map_err(&failed)?;
            }
            let table = writer
                .finish(frame_index.fingerprint(), frame_index.timestamps())
                .map_err(&failed)?;
            std::fs::rename(&temporary, &packets_path)
                .and_then(|()| File::open(dir)?.sync_all())
                .map_err(|e| failed(e.to_string()))?;
            store::cache::write_versioned(&table_path, &table)
                .map_err(|e| failed(e.to_string()))?;
            Ok(Some(ProxyReport {
                frames: table.source_pts.len() as u64,
                width,
                height,
                bytes: *table.offsets.last().unwrap_or(&0),
                codec: table.codec,
            }))
        })();
        if !matches!(result, Ok(Some(_))) {
            let _ = std::fs::remove_file(&temporary);
        }
        result
    }

    /// Removes the proxy files of the video with this frame index from `dir`.
    pub fn remove(dir: &Path, frame_index: &FrameIndex, max_width: u32) {
        let (width, _) = proxy_size(frame_index.facts.display_size(), max_width);
        let (packets, table) = proxy_paths(dir, frame_index, width);
        let _ = std::fs::remove_file(table);
        let _ = std::fs::remove_file(packets);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Encodes pictures one per frame into a packets file, keeping the table.
struct ProxyWriter {
    file: BufWriter<File>,
    encoder: ffmpeg::encoder::Video,
    codec: String,
    scaler: Option<ffmpeg::software::scaling::Context>,
    bgr: Option<ffmpeg::frame::Video>,
    yuv: ffmpeg::frame::Video,
    packet: ffmpeg::Packet,
    offsets: Vec<u64>,
    keyframes: Vec<u64>,
    written: u64,
}

impl ProxyWriter {
    fn new(path: &Path, width: u32, height: u32) -> Result<Self, String> {
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
        // SAFETY: a fresh, unopened context of our own; one thread, so the background build
        // takes one core at most and gives every packet back before the next frame.
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
            options.set("preset", "veryfast");
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
        let file = File::create(path).map_err(|e| e.to_string())?;
        Ok(Self {
            file: BufWriter::new(file),
            encoder,
            codec: name.to_string(),
            scaler: None,
            bgr: None,
            yuv: ffmpeg::frame::Video::new(Pixel::YUV420P, width, height),
            packet: ffmpeg::Packet::empty(),
            offsets: Vec::new(),
            keyframes: Vec::new(),
            written: 0,
        })
    }

    /// Encodes frame `n` (upright BGR at any size).
    fn push(&mut self, image: &Mat, n: u64) -> Result<(), String> {
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
        self.yuv.set_pts(Some(n as i64));
        self.encoder
            .send_frame(&self.yuv)
            .map_err(|e| e.to_string())?;
        self.drain()
    }

    fn drain(&mut self) -> Result<(), String> {
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    let n = self.offsets.len() as u64;
                    if self.packet.pts() != Some(n as i64) {
                        return Err(format!(
                            "the encoder gave packet {n} the time {:?}: frames would not line up",
                            self.packet.pts()
                        ));
                    }
                    if self.packet.is_key() {
                        self.keyframes.push(n);
                    }
                    let bytes = self.packet.data().unwrap_or(&[]);
                    self.offsets.push(self.written);
                    self.file.write_all(bytes).map_err(|e| e.to_string())?;
                    self.written += bytes.len() as u64;
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
        source_pts: &[i64],
    ) -> Result<ProxyTable, String> {
        self.encoder.send_eof().map_err(|e| e.to_string())?;
        self.drain()?;
        if self.offsets.len() != source_pts.len() {
            return Err(format!(
                "{} packets for {} frames",
                self.offsets.len(),
                source_pts.len()
            ));
        }
        self.offsets.push(self.written);
        let file = self.file.into_inner().map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        let table = ProxyTable {
            format_version: PROXY_VERSION,
            video: video.clone(),
            width: self.yuv.width(),
            height: self.yuv.height(),
            codec: self.codec,
            source_pts: source_pts.to_vec(),
            offsets: self.offsets,
            keyframes: self.keyframes,
        };
        let spaced = table.keyframes.first() == Some(&0)
            && table.keyframes.windows(2).all(|w| w[1] - w[0] <= PROXY_GOP)
            && table
                .keyframes
                .last()
                .is_some_and(|&k| source_pts.len() as u64 - k <= PROXY_GOP);
        if !spaced {
            return Err("the encoder did not place a keyframe every 15 frames".into());
        }
        Ok(table)
    }
}

/// Reads frames of a [`Proxy`]; stays positioned after the last frame it read, so playing
/// forward decodes on.
pub struct ProxyDecoder {
    proxy: Arc<Proxy>,
    codec: ffmpeg::decoder::Video,
    converter: Converter,
    picture: ffmpeg::frame::Video,
    /// The next packet to send.
    fed: u64,
    /// The frame the next picture out of the decoder is.
    out: u64,
    /// Pictures decoded since opening.
    decoded: u64,
    /// The frame `picture` holds, if it holds one.
    holds: Option<u64>,
}

impl ProxyDecoder {
    pub fn new(proxy: Arc<Proxy>) -> Result<Self, VideoError> {
        let failed = |e: ffmpeg::Error| VideoError::Codec {
            path: proxy.path.clone(),
            reason: e.to_string(),
        };
        let id = match proxy.table.codec.as_str() {
            "libx264" => ffmpeg::codec::Id::H264,
            _ => ffmpeg::codec::Id::MPEG4,
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
            proxy,
            codec,
            converter: Converter::new(0),
            picture: ffmpeg::frame::Video::empty(),
            fed: 0,
            out: 0,
            decoded: 0,
            holds: None,
        })
    }

    pub fn pictures_decoded(&self) -> u64 {
        self.decoded
    }

    /// Whether `proxy` is the one this decoder reads.
    pub fn reads(&self, proxy: &Arc<Proxy>) -> bool {
        Arc::ptr_eq(&self.proxy, proxy)
    }

    /// Exactly frame `n` at the proxy's size, as BGR.
    pub fn frame(&mut self, n: u64) -> Result<Mat, VideoError> {
        let (width, _) = self.proxy.size();
        self.frame_at_width(n, width)
    }

    /// Exactly frame `n` as BGR, `width` wide at most (the aspect kept), converted from the
    /// decoder's YUV planes and scaled in one pass.
    pub fn frame_at_width(&mut self, n: u64, width: u32) -> Result<Mat, VideoError> {
        self.decode(n)?;
        let (w, h) = self.proxy.size();
        let width = width.clamp(1, w);
        let height = ((f64::from(h) * f64::from(width) / f64::from(w)).round() as u32).max(1);
        let path = &self.proxy.path;
        self.converter
            .bgr_at(&self.picture, width, height)
            .map_err(|reason| VideoError::Decode {
                path: path.clone(),
                frame: n,
                reason,
            })
    }

    /// Leaves frame `n`'s picture in `self.picture`.
    fn decode(&mut self, n: u64) -> Result<(), VideoError> {
        let frames = self.proxy.frames();
        if n >= frames {
            return Err(VideoError::OutOfRange { frame: n, frames });
        }
        if self.holds == Some(n) {
            return Ok(());
        }
        self.holds = None;
        let key = self.proxy.keyframe_for(n);
        // Decode on where n is ahead in the same run of pictures, else start at its keyframe.
        if n < self.out || key > self.out {
            self.codec.flush();
            self.fed = key;
            self.out = key;
        }
        let error = |reason: String| VideoError::Decode {
            path: self.proxy.path.clone(),
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
                    if self.fed < frames {
                        let packet = self
                            .proxy
                            .packet(self.fed)
                            .map_err(|e| error(format!("cannot read the display proxy: {e}")))?;
                        self.fed += 1;
                        // A packet the decoder refuses shows up as a missing picture below.
                        let _ = self.codec.send_packet(&packet);
                    } else if !ended {
                        ended = true;
                        let _ = self.codec.send_eof();
                    } else {
                        return Err(error("the display proxy ended early".into()));
                    }
                }
                Err(e) => {
                    // Start over at the keyframe next time.
                    self.out = u64::MAX;
                    return Err(error(e.to_string()));
                }
            }
        }
    }
}
