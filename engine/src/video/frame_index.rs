//! The frame index: which frames a video presents, in which order, at which time, and where
//! decoding can start to reach each of them.
//!
//! Invariants:
//! - Frame N is the N-th frame FFmpeg presents: after edit lists, from the first presented
//!   frame, in presentation order — image N+1 of `ffmpeg -i V -fps_mode passthrough %d.png`.
//!   Its time is its presentation timestamp minus frame 0's.
//! - `pts` is strictly increasing, so a decoded frame's timestamp names exactly one frame.
//! - `starts[0]` is the stream's first packet: decoding from the top of the file always works.
//! - Built from packets (timestamps, keyframe and discard flags read by demuxing) plus a decode
//!   of the first GOP only: which of the first packets a decoder can show (a capture that begins
//!   mid-GOP, the leading pictures of an open GOP) is the decoder's call, so it is asked. Where
//!   packets lack timestamps the whole file is decoded instead ([`IndexMethod`]).
//! - Persisted in the cache folder under the video's content fingerprint, so a restart reads
//!   a file instead of scanning the video again.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

use super::source::{PacketInfo, Read, Source, StreamFacts};
use super::{Metadata, VideoError};
use store::cache::VideoFingerprint;

/// Bumped whenever the meaning of a field changes; other versions are rebuilt.
pub const INDEX_VERSION: u32 = 1;

/// At most this many packets after the first keyframe are decoded to see which of the first
/// packets the decoder shows (a GOP is rarely longer; a longer one is cut here).
const CALIBRATION_PACKETS: usize = 600;

/// How the index learned the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexMethod {
    /// Packet timestamps, with the first GOP decoded to see which frames the decoder shows.
    Packets,
    /// Every frame decoded, because packets lack timestamps; frames are known by the
    /// timestamps the decoder gives them.
    Decoded,
    /// Every frame decoded, and the decoder's timestamps are missing or repeat: a frame is known
    /// only by counting from the first, so reaching an earlier frame decodes from the top.
    Counted,
}

/// A packet decoding can start from: the stream's first packet, or a keyframe.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecodeStart {
    /// Position among the stream's packets in decode order.
    pub packet: u32,
    pub pts: Option<i64>,
    pub dts: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameIndex {
    /// First field, read before the rest (see `cache::read_versioned`).
    format_version: u32,
    video: VideoFingerprint,
    pub facts: StreamFacts,
    pub method: IndexMethod,
    /// Presentation timestamp of frame n, strictly increasing (frame numbers for `Counted`).
    pts: Vec<i64>,
    /// Position in decode order of frame n's packet (for `Decoded` and `Counted`: of the packet
    /// sent when the frame came out, which is at or after its own).
    packet: Vec<u32>,
    starts: Vec<DecodeStart>,
    /// Packets of the video stream.
    pub packets: u64,
    /// Packets outside the edit list: decoded as references, never shown.
    pub discarded: u64,
    /// Packets at the start the decoder shows no picture for (before the first keyframe, or
    /// leading pictures whose references precede the file).
    pub not_shown: u64,
    /// Why demuxing stopped before the end of the file, if it did.
    pub read_error: Option<String>,
    /// Frame n is shown at n / fps, to within a quarter frame, for every frame.
    constant_rate: bool,
}

impl FrameIndex {
    /// The index of the video at `path`: read from `dir` when a file for this content is
    /// there, else built (and saved there, when `dir` is given).
    pub fn load_or_build(path: &Path, dir: Option<&Path>) -> Result<Arc<Self>, VideoError> {
        let video = VideoFingerprint::of_file(path).map_err(|_| {
            if path.is_file() {
                VideoError::CannotOpen(path.to_path_buf())
            } else {
                VideoError::NotFound(path.to_path_buf())
            }
        })?;
        let file = dir.map(|dir| dir.join(Self::file_name(&video)));
        if let Some(file) = &file {
            store::cache::remove_stale_temporaries(file);
            match store::cache::read_versioned::<Self>(file, INDEX_VERSION) {
                Ok(Some(index)) if index.video == video && index.is_consistent() => {
                    return Ok(Arc::new(index))
                }
                Ok(Some(_)) => tracing::warn!(
                    "{} does not describe this video; scanning it again",
                    file.display()
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}; scanning the video again"),
            }
        }
        let index = Self::build(path, video)?;
        if let Some(file) = &file {
            if let Err(e) = store::cache::write_versioned(file, &index) {
                tracing::warn!("cannot save the frame index: {e}");
            }
        }
        Ok(Arc::new(index))
    }

    /// The saved index of the video with content `video` in `dir`, if there is a valid one
    /// (answers from the cache use it for frame times without opening the video).
    pub fn saved(dir: &Path, video: &VideoFingerprint) -> Option<Arc<Self>> {
        let file = dir.join(Self::file_name(video));
        match store::cache::read_versioned::<Self>(&file, INDEX_VERSION) {
            Ok(Some(index)) if index.video == *video && index.is_consistent() => {
                Some(Arc::new(index))
            }
            _ => None,
        }
    }

    /// The index file's name for a video with this content.
    pub fn file_name(video: &VideoFingerprint) -> String {
        format!("{}-{}.frames", video.short(), video.size)
    }

    /// Where [`load_or_build`](Self::load_or_build) keeps the index of `path` in `dir`.
    pub fn path_in(dir: &Path, path: &Path) -> std::io::Result<PathBuf> {
        Ok(dir.join(Self::file_name(&VideoFingerprint::of_file(path)?)))
    }

    fn build(path: &Path, video: VideoFingerprint) -> Result<Self, VideoError> {
        let mut source = Source::open(path)?;
        let facts = source.facts.clone();
        let (packets, read_error) = scan_packets(&mut source);
        drop(source);
        if packets.is_empty() {
            return Err(VideoError::NoFrames(path.to_path_buf()));
        }
        if let Some(claimed) = facts.container_frames {
            if (packets.len() as u64) < claimed && facts.container.starts_with("mov") {
                return Err(VideoError::Truncated {
                    path: path.to_path_buf(),
                    claimed,
                    found: packets.len() as u64,
                });
            }
        }
        let mut starts = vec![DecodeStart {
            packet: 0,
            pts: packets[0].pts,
            dts: packets[0].dts,
        }];
        starts.extend(
            packets
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, p)| p.key)
                .map(|(i, p)| DecodeStart {
                    packet: i as u32,
                    pts: p.pts,
                    dts: p.dts,
                }),
        );
        let discarded = packets.iter().filter(|p| p.discard).count() as u64;
        let mut index = Self {
            format_version: INDEX_VERSION,
            video,
            facts,
            method: IndexMethod::Packets,
            pts: Vec::new(),
            packet: Vec::new(),
            starts,
            packets: packets.len() as u64,
            discarded,
            not_shown: 0,
            read_error,
            constant_rate: false,
        };
        match shown_by_packets(path, &packets)? {
            Some((frames, not_shown)) => {
                (index.pts, index.packet) = frames.into_iter().unzip();
                index.not_shown = not_shown;
            }
            None => index.decode_all(path)?,
        }
        if index.pts.is_empty() {
            return Err(VideoError::NoFrames(path.to_path_buf()));
        }
        let fps = index.fps();
        index.constant_rate = fps > 0.0
            && (0..index.frames())
                .all(|n| (index.stored_time_s(n) - n as f64 / fps).abs() <= 0.25 / fps);
        Ok(index)
    }

    /// Learns the frames by decoding the whole file (packets without usable timestamps).
    fn decode_all(&mut self, path: &Path) -> Result<(), VideoError> {
        let mut timestamps = Vec::new();
        let mut sent = Vec::new();
        decode_packets(path, usize::MAX, |ts, packets_sent| {
            timestamps.push(ts);
            sent.push(packets_sent.saturating_sub(1) as u32);
        })?;
        let known: Option<Vec<i64>> = timestamps.iter().copied().collect();
        match known.filter(|ts| ts.windows(2).all(|w| w[0] < w[1])) {
            Some(ts) => {
                self.method = IndexMethod::Decoded;
                self.pts = ts;
            }
            None => {
                self.method = IndexMethod::Counted;
                self.pts = (0..timestamps.len() as i64).collect();
            }
        }
        self.packet = sent;
        self.not_shown = 0;
        Ok(())
    }

    fn is_consistent(&self) -> bool {
        !self.pts.is_empty()
            && self.pts.len() == self.packet.len()
            && self.pts.windows(2).all(|w| w[0] < w[1])
            && self.starts.first().is_some_and(|s| s.packet == 0)
            && self.starts.windows(2).all(|w| w[0].packet < w[1].packet)
    }

    pub fn frames(&self) -> u64 {
        self.pts.len() as u64
    }

    /// The content fingerprint of the video this index describes.
    pub fn fingerprint(&self) -> &VideoFingerprint {
        &self.video
    }

    /// The timestamp of every frame, in frame order.
    pub fn timestamps(&self) -> &[i64] {
        &self.pts
    }

    /// Keyframes (places decoding can start) in the stream, the first packet included.
    pub fn keyframes(&self) -> u64 {
        self.starts.len() as u64
    }

    /// The frame whose timestamp is `ts` (a decoded frame's `pts`, else its best-effort
    /// timestamp), if it is a frame of the index.
    pub fn frame_at_timestamp(&self, ts: i64) -> Option<u64> {
        self.pts.binary_search(&ts).ok().map(|i| i as u64)
    }

    pub fn timestamp(&self, frame: u64) -> i64 {
        self.pts[frame as usize]
    }

    pub fn packet_of(&self, frame: u64) -> u64 {
        u64::from(self.packet[frame as usize])
    }

    pub fn starts(&self) -> &[DecodeStart] {
        &self.starts
    }

    /// The start decoding should begin at to reach `frame`: the last one before the frame's
    /// packet in decode order whose picture is not after the frame. (The leading pictures of an
    /// open GOP come after its keyframe in decode order but before it on screen, and need the
    /// GOP before.)
    pub fn start_for(&self, frame: u64) -> usize {
        let packet = self.packet[frame as usize];
        let pts = self.pts[frame as usize];
        let mut at = self
            .starts
            .partition_point(|s| s.packet <= packet)
            .saturating_sub(1);
        if self.method != IndexMethod::Counted {
            while at > 0 && self.starts[at].pts.is_some_and(|key| key > pts) {
                at -= 1;
            }
        }
        at
    }

    /// Seconds from frame 0 to `frame`: its presentation time. At a constant rate that is
    /// `frame / fps` exactly (containers store it rounded, MKV to the millisecond).
    pub fn time_s(&self, frame: u64) -> f64 {
        if self.constant_rate {
            investigator_core::types::seconds_at(frame, self.fps())
        } else {
            self.stored_time_s(frame)
        }
    }

    /// Seconds from frame 0 to `frame` by the stored timestamps.
    fn stored_time_s(&self, frame: u64) -> f64 {
        match self.method {
            IndexMethod::Counted => investigator_core::types::seconds_at(frame, self.fps()),
            _ => self.facts.seconds(self.pts[frame as usize] - self.pts[0]),
        }
    }

    /// Presentation times of all frames, in seconds from frame 0.
    pub fn times_s(&self) -> Vec<f64> {
        (0..self.frames()).map(|n| self.time_s(n)).collect()
    }

    /// Frames per second: the container's rate where the timestamps agree with it, else the
    /// timestamps' average.
    pub fn fps(&self) -> f64 {
        let stated = self.facts.stated_rate();
        if self.method == IndexMethod::Counted || self.pts.len() < 2 {
            return stated.unwrap_or(0.0);
        }
        let span = self
            .facts
            .seconds(self.pts[self.pts.len() - 1] - self.pts[0]);
        let measured = (self.pts.len() - 1) as f64 / span;
        match stated {
            Some(rate) if (rate - measured).abs() <= rate * 1e-3 => rate,
            _ if measured.is_finite() && measured > 0.0 => measured,
            _ => stated.unwrap_or(0.0),
        }
    }

    /// Whether frame n is shown at n / fps (within a quarter frame) for every frame.
    pub fn constant_rate(&self) -> bool {
        self.constant_rate
    }

    /// From the first frame's start to the last frame's end.
    pub fn duration_s(&self) -> f64 {
        let fps = self.fps();
        let last = self.frames() - 1;
        self.time_s(last) + if fps > 0.0 { 1.0 / fps } else { 0.0 }
    }

    pub fn metadata(&self) -> Metadata {
        let (width, height) = self.facts.display_size();
        Metadata {
            frames: self.frames(),
            fps: self.fps(),
            width,
            height,
            exact_count: true,
        }
    }
}

/// Every packet of the video stream in decode order, and why reading stopped early if it did.
fn scan_packets(source: &mut Source) -> (Vec<PacketInfo>, Option<String>) {
    let mut packets = Vec::new();
    let mut packet = ffmpeg::Packet::empty();
    loop {
        match source.read(&mut packet) {
            Read::Packet => packets.push(PacketInfo::of(&packet)),
            Read::End => return (packets, None),
            Read::Failed(error) => return (packets, Some(error.to_string())),
        }
    }
}

/// The shown frames as (pts, packet position) in presentation order, and how many packets at
/// the start the decoder showed nothing for.
type ShownFrames = (Vec<(i64, u32)>, u64);

/// [`ShownFrames`] from the packets; `None` when packets cannot tell: a shown packet without a
/// timestamp, two with the same one, or a decoder that invents timestamps.
fn shown_by_packets(
    path: &Path,
    packets: &[PacketInfo],
) -> Result<Option<ShownFrames>, VideoError> {
    let mut shown = Vec::with_capacity(packets.len());
    for (i, p) in packets.iter().enumerate() {
        if !p.discard {
            let Some(pts) = p.pts else { return Ok(None) };
            shown.push((pts, i as u32));
        }
    }
    // Decode the start, where the decoder decides which packets it can show: the packets before
    // the first keyframe and its leading pictures (on screen before it). If the decoder shows
    // the rest of that stretch, the frames after it are shown too; if not (a keyframe it cannot
    // start from), decode up to the second keyframe, where its choices at the top end.
    let keys: Vec<usize> = packets
        .iter()
        .enumerate()
        .filter(|(_, p)| p.key)
        .map(|(i, _)| i)
        .collect();
    let first_key = keys.first().copied().unwrap_or(0);
    let key_pts = packets[first_key].pts;
    let before_key =
        |p: &PacketInfo| matches!((p.pts, key_pts), (Some(pts), Some(key)) if pts < key);
    let leading_end = packets
        .iter()
        .rposition(before_key)
        .map_or(0, |i| i + 1)
        .max(first_key + 1)
        .min(packets.len());
    let decode = |end: usize| -> Result<Option<HashSet<i64>>, VideoError> {
        let mut decoded = Vec::new();
        decode_packets(path, end, |ts, _| decoded.push(ts))?;
        Ok(decoded.into_iter().collect())
    };
    let Some(mut decoded) = decode(leading_end)? else {
        return Ok(None);
    };
    let mut end = leading_end;
    let rest_shown = shown
        .iter()
        .filter(|(pts, i)| (*i as usize) < end && key_pts.is_none_or(|key| *pts >= key))
        .all(|(pts, _)| decoded.contains(pts));
    if !rest_shown {
        tracing::debug!(path = %path.display(), "the first keyframe is not a clean start: decoding up to the second");
        end = keys
            .get(1)
            .copied()
            .unwrap_or(packets.len())
            .min(first_key + CALIBRATION_PACKETS)
            .max(leading_end)
            .min(packets.len());
        let Some(more) = decode(end)? else {
            return Ok(None);
        };
        decoded = more;
    }
    let in_range: HashSet<i64> = shown
        .iter()
        .filter(|(_, i)| (*i as usize) < end)
        .map(|(pts, _)| *pts)
        .collect();
    if !decoded.is_subset(&in_range) {
        return Ok(None);
    }
    let not_shown = (in_range.len() - decoded.len()) as u64;
    shown.retain(|(pts, i)| (*i as usize) >= end || decoded.contains(pts));
    shown.sort_unstable();
    if shown.windows(2).any(|w| w[0].0 == w[1].0) {
        return Ok(None);
    }
    Ok(Some((shown, not_shown)))
}

/// Decodes the first `limit` packets of the video stream from the top of the file, then
/// drains the decoder; calls `frame(timestamp, packets sent so far)` for each frame it shows.
fn decode_packets(
    path: &Path,
    limit: usize,
    mut frame: impl FnMut(Option<i64>, usize),
) -> Result<(), VideoError> {
    let mut source = Source::open(path)?;
    let mut decoder = source.decoder(false).map_err(|e| VideoError::Codec {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut packet = ffmpeg::Packet::empty();
    let mut picture = ffmpeg::frame::Video::empty();
    let mut sent = 0usize;
    let mut drain = |decoder: &mut ffmpeg::decoder::Video, sent: usize| {
        while decoder.receive_frame(&mut picture).is_ok() {
            frame(super::timestamp_of(&picture), sent);
        }
    };
    while sent < limit {
        match source.read(&mut packet) {
            Read::Packet => {}
            Read::End | Read::Failed(_) => break,
        }
        // A packet the decoder refuses is skipped, as FFmpeg's command line skips it; a full
        // decoder is drained first.
        if let Err(ffmpeg::Error::Other { errno }) = decoder.send_packet(&packet) {
            if errno == ffmpeg::ffi::EAGAIN {
                drain(&mut decoder, sent);
                let _ = decoder.send_packet(&packet);
            }
        }
        sent += 1;
        drain(&mut decoder, sent);
    }
    let _ = decoder.send_eof();
    drain(&mut decoder, sent);
    Ok(())
}
