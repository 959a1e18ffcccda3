//! One viewer's decoder: exactly frame n, every time.
//!
//! Invariants:
//! - A frame is returned only when the decoder gave a picture whose timestamp is frame n's in
//!   the [`FrameIndex`]; a container's frame-number arithmetic is never trusted.
//! - A seek goes to a decode start of the index (the stream's first packet or a keyframe), and
//!   is checked: the demuxer must deliver that very packet (same timestamps), else the seek
//!   aims earlier and, at worst, the file is opened again at its top.
//! - Between requests the decoder stays where it is, so playing forward and short jumps decode
//!   on instead of seeking; a jump decodes forward or seeks, whichever decodes fewer packets.
//! - On the way to frame n, a picture no other picture refers to and that shows before n is
//!   not decoded (FFmpeg's `skip_frame` "noref", packet by packet): nothing can ask for it
//!   before n is returned, and no other picture changes without it. Pictures are still known
//!   by timestamp, so skipping cannot shift a frame number; where a frame is not reached with
//!   skipping (timestamps that disagree with the index), the decoder stops skipping for good.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ffmpeg_next as ffmpeg;
use opencv::core::Mat;

use super::convert::Converter;
use super::frame_index::{FrameIndex, IndexMethod};
use super::source::{PacketInfo, Read, Source};
use super::VideoError;

/// What a seek costs beyond the packets it decodes, in packets (the demuxer's search, the
/// decoder's flush and refill): a jump decodes forward unless seeking saves more than this.
const SEEK_COST_PACKETS: u64 = 12;

/// Packets read after a seek while looking for the start packet before aiming earlier.
const SEEK_SEARCH_PACKETS: usize = 20_000;

/// Frames before this packet position may also be reached by decoding from the top of the file
/// when seeking fails (beyond it that would decode too much to be worth it).
const FROM_TOP_PACKETS: u64 = 3_000;

/// Packets decoded past a frame's own without seeing it, or anything after it, before giving
/// up on it (deeper than any decoder's reordering).
const REORDER_PACKETS: u64 = 64;

/// Decoder errors in a row after which the stream is treated as ended.
const MAX_ERRORS_IN_A_ROW: u32 = 100;

pub struct Decoder {
    path: PathBuf,
    frame_index: Arc<FrameIndex>,
    source: Source,
    codec: ffmpeg::decoder::Video,
    converter: Converter,
    packet: ffmpeg::Packet,
    /// `packet` holds a packet read but not yet sent (the start packet found after a seek).
    holding: bool,
    /// Decode-order position of the next packet to send, where known.
    packet_pos: Option<u64>,
    /// Pictures shown since the top of the file (frame numbers for [`IndexMethod::Counted`]).
    counted: u64,
    input_ended: bool,
    decoder_ended: bool,
    /// The frame the next sequential read returns, when known.
    next: Option<u64>,
    /// A picture decoded past the one asked for (the decoder showed nothing for that one).
    ahead: Option<(u64, ffmpeg::frame::Video)>,
    picture: ffmpeg::frame::Video,
    /// What FFmpeg last said went wrong, for the error message.
    last_error: Option<String>,
    errors_in_a_row: u32,
    /// Pictures decoded since opening (what sparse indexing passes cost).
    decoded: u64,
    /// The frame `decode_to` is heading for: unreferenced pictures before it are skipped.
    heading_for: Option<u64>,
    /// Whether unreferenced pictures on the way may be skipped (not where frames are counted).
    skip_passed: bool,
    /// Whether the codec is set to skip unreferenced pictures now.
    skipping: bool,
    /// Decodes on one thread (see [`single_threaded`](Self::single_threaded)).
    one_thread: bool,
}

/// What the decoder showed next.
enum Shown {
    /// Frame n of the index, in `picture`.
    Frame(u64),
    /// A picture that is no frame of the index (a broken leading picture after a seek).
    Other,
    /// The stream ended.
    End,
}

/// Why a picture could not be reached from where the decoder is.
enum Missed {
    /// The decoder went past the frame without showing it.
    Passed,
    /// The stream ended first.
    Ended,
}

impl Decoder {
    /// Opens `path`, building its frame index (a packet scan). Viewers of a video share one
    /// index through [`Decoder::with_index`].
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        let frame_index = FrameIndex::load_or_build(path, None)?;
        Self::with_index(path, frame_index)
    }

    pub fn with_index(path: &Path, frame_index: Arc<FrameIndex>) -> Result<Self, VideoError> {
        let source = Source::open(path)?;
        let codec = source.decoder(false).map_err(|e| VideoError::Codec {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            converter: Converter::new(frame_index.facts.rotation),
            skip_passed: frame_index.method != IndexMethod::Counted,
            frame_index,
            source,
            codec,
            packet: ffmpeg::Packet::empty(),
            holding: false,
            packet_pos: Some(0),
            counted: 0,
            input_ended: false,
            decoder_ended: false,
            next: Some(0),
            ahead: None,
            picture: ffmpeg::frame::Video::empty(),
            last_error: None,
            errors_in_a_row: 0,
            decoded: 0,
            heading_for: None,
            skipping: false,
            one_thread: false,
        })
    }

    /// As [`with_index`](Self::with_index), decoding on one thread: for viewers' frames and
    /// the display proxy, whose work is already spread over the cores one piece per core (and
    /// a frame-threaded decoder holds a picture per thread, and its latency, for each frame).
    pub fn single_threaded(path: &Path, frame_index: Arc<FrameIndex>) -> Result<Self, VideoError> {
        let mut decoder = Self::with_index(path, frame_index)?;
        decoder.one_thread = true;
        decoder.codec = decoder
            .source
            .decoder(true)
            .map_err(|e| VideoError::Codec {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(decoder)
    }

    pub fn frame_index(&self) -> &Arc<FrameIndex> {
        &self.frame_index
    }

    pub fn frames(&self) -> u64 {
        self.frame_index.frames()
    }

    /// Pictures decoded since the decoder was opened, whether shown or only passed through.
    pub fn pictures_decoded(&self) -> u64 {
        self.decoded
    }

    /// The frame the next sequential read returns (`frames()` at the end; unknown right after
    /// a failed read: then `u64::MAX`).
    pub fn position(&self) -> u64 {
        self.next.unwrap_or(u64::MAX)
    }

    /// Whether reaching frame `t` from here decodes frame `m` on the way: decoding on passes
    /// every frame from [`position`](Self::position), a seek every frame from `t`'s decode
    /// start.
    pub fn passes_on_the_way(&self, m: u64, t: u64) -> bool {
        if m >= t || t >= self.frame_index.frames() {
            return false;
        }
        let start = self.frame_index.start_for(t);
        if self.should_decode_forward(t, start) {
            m >= self.position()
        } else {
            self.frame_index.start_for(m) == start
        }
    }

    /// Whether frame `n` lies ahead with no decode start between here and it: decoding on to
    /// it decodes fewer pictures than decoding it from its own decode start would.
    pub fn in_reach(&self, n: u64) -> bool {
        let Some(next) = self.next else { return false };
        if n < next || n >= self.frame_index.frames() {
            return false;
        }
        let start_packet =
            u64::from(self.frame_index.starts()[self.frame_index.start_for(n)].packet);
        self.packet_pos.is_some_and(|here| start_packet <= here)
    }

    /// Exactly frame `n`, upright, as BGR. A frame past the end or one that cannot be decoded
    /// is an error naming that frame; the decoder keeps working for the others.
    pub fn frame(&mut self, n: u64) -> Result<Mat, VideoError> {
        self.seek_and_decode(n)?;
        let picture = match &self.ahead {
            Some((m, picture)) if *m == n => picture,
            _ => &self.picture,
        };
        let image = self
            .converter
            .upright_bgr(picture)
            .map_err(|reason| VideoError::Decode {
                path: self.path.clone(),
                frame: n,
                reason,
            });
        if matches!(&self.ahead, Some((m, _)) if *m == n) {
            self.ahead = None;
        }
        image
    }

    /// Exactly frame `n` as the decoder gives it: its own pixel format and size, as stored (not
    /// turned upright). For consumers that convert it themselves (the display proxy's encoder:
    /// one conversion instead of two).
    pub fn picture(&mut self, n: u64) -> Result<&ffmpeg::frame::Video, VideoError> {
        self.seek_and_decode(n)?;
        if matches!(&self.ahead, Some((m, _)) if *m == n) {
            let (_, picture) = self.ahead.take().expect("matched above");
            self.picture = picture;
        }
        Ok(&self.picture)
    }

    /// Leaves frame `n`'s picture in `self.picture` (or in `self.ahead`).
    fn seek_and_decode(&mut self, n: u64) -> Result<(), VideoError> {
        let frames = self.frame_index.frames();
        if n >= frames {
            return Err(VideoError::OutOfRange { frame: n, frames });
        }
        if let Some((m, _)) = &self.ahead {
            if *m == n {
                self.next = Some(n + 1);
                return Ok(());
            }
        }
        let start = self.frame_index.start_for(n);
        if self.should_decode_forward(n, start) && self.decode_to(n)?.is_ok() {
            return Ok(());
        }
        if self.restart_for(n, start)? {
            return Ok(());
        }
        if self.skip_passed {
            // A skipped picture may have been this frame after all (packet timestamps that
            // disagree with the pictures'): from now on every picture is decoded.
            tracing::debug!(path = %self.path.display(), frame = n, "frame not reached while skipping unreferenced pictures; decoding all of them");
            self.skip_passed = false;
            if self.restart_for(n, start)? {
                return Ok(());
            }
        }
        self.next = None;
        Err(VideoError::Decode {
            path: self.path.clone(),
            frame: n,
            reason: self
                .last_error
                .take()
                .map(|e| format!("the decoder failed ({e})"))
                .unwrap_or_else(|| "the decoder showed no picture for it".into()),
        })
    }

    /// Restarts at frame `n`'s decode start, then earlier ones, until decoding on reaches it.
    fn restart_for(&mut self, n: u64, start: usize) -> Result<bool, VideoError> {
        let mut tried = Vec::new();
        for candidate in self.restart_candidates(n, start) {
            if tried.contains(&candidate) {
                continue;
            }
            tried.push(candidate);
            self.restart(candidate)?;
            if self.decode_to(n)?.is_ok() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether frame `n` is best reached by decoding on from where the decoder is.
    fn should_decode_forward(&self, n: u64, start: usize) -> bool {
        let Some(next) = self.next else { return false };
        if n < next || self.ahead.as_ref().is_some_and(|(m, _)| *m > n) {
            return false;
        }
        if self.frame_index.method == IndexMethod::Counted {
            return true;
        }
        let start_packet = u64::from(self.frame_index.starts()[start].packet);
        let target_packet = self.frame_index.packet_of(n);
        match self.packet_pos {
            // No keyframe between here and the frame: seeking would decode at least as much.
            Some(here) if start_packet <= here => true,
            Some(here) => {
                target_packet.saturating_sub(here)
                    <= target_packet - start_packet + SEEK_COST_PACKETS
            }
            None => n - next <= SEEK_COST_PACKETS,
        }
    }

    /// Where to decode from, in order, when decoding on did not give frame `n`: its own start,
    /// then one and two keyframes earlier (a keyframe that is not a clean start), then the
    /// top of the file where that is near enough (or where frames can only be counted).
    fn restart_candidates(&self, n: u64, start: usize) -> Vec<usize> {
        if self.frame_index.method == IndexMethod::Counted {
            return vec![0];
        }
        let mut candidates = vec![start, start.saturating_sub(1), start.saturating_sub(2)];
        if self.frame_index.packet_of(n) < FROM_TOP_PACKETS {
            candidates.push(0);
        }
        candidates
    }

    /// Decodes on until frame `n`. `Ok(Err(_))`: the decoder passed it or the stream ended.
    fn decode_to(&mut self, n: u64) -> Result<Result<(), Missed>, VideoError> {
        if let Some((m, _)) = &self.ahead {
            if *m > n {
                return Ok(Err(Missed::Passed));
            }
            self.ahead = None;
        }
        // Far enough past the frame's packet, pictures that are no frame of the index mean
        // it will not come (the timestamps after this seek are not the index's).
        let give_up_after = self.frame_index.packet_of(n) + REORDER_PACKETS;
        self.heading_for = Some(n);
        let reached = self.decode_on_to(n, give_up_after);
        self.heading_for = None;
        reached
    }

    fn decode_on_to(
        &mut self,
        n: u64,
        give_up_after: u64,
    ) -> Result<Result<(), Missed>, VideoError> {
        loop {
            match self.receive()? {
                Shown::Frame(m) if m < n => continue,
                Shown::Frame(m) if m == n => {
                    self.next = Some(n + 1);
                    return Ok(Ok(()));
                }
                Shown::Frame(m) => {
                    let picture =
                        std::mem::replace(&mut self.picture, ffmpeg::frame::Video::empty());
                    self.ahead = Some((m, picture));
                    self.next = Some(m);
                    return Ok(Err(Missed::Passed));
                }
                Shown::Other => {
                    if self.packet_pos.is_none_or(|here| here > give_up_after) {
                        self.next = None;
                        return Ok(Err(Missed::Passed));
                    }
                }
                Shown::End => {
                    self.next = Some(self.frame_index.frames());
                    return Ok(Err(Missed::Ended));
                }
            }
        }
    }

    /// The next picture the decoder shows, left in `self.picture`.
    fn receive(&mut self) -> Result<Shown, VideoError> {
        loop {
            if self.decoder_ended {
                return Ok(Shown::End);
            }
            match self.codec.receive_frame(&mut self.picture) {
                Ok(()) => {
                    self.errors_in_a_row = 0;
                    self.decoded += 1;
                    let frame = match self.frame_index.method {
                        IndexMethod::Counted => {
                            self.counted += 1;
                            Some(self.counted - 1)
                        }
                        _ => super::timestamp_of(&self.picture)
                            .and_then(|ts| self.frame_index.frame_at_timestamp(ts)),
                    };
                    return Ok(frame.map_or(Shown::Other, Shown::Frame));
                }
                Err(ffmpeg::Error::Eof) => self.decoder_ended = true,
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::ffi::EAGAIN => {
                    if self.input_ended {
                        // Drained and nothing more to send: the decoder has nothing left.
                        self.decoder_ended = true;
                    } else {
                        self.send_next_packet();
                    }
                }
                Err(error) => {
                    self.last_error = Some(error.to_string());
                    self.errors_in_a_row += 1;
                    if self.input_ended || self.errors_in_a_row > MAX_ERRORS_IN_A_ROW {
                        self.decoder_ended = true;
                    } else {
                        self.send_next_packet();
                    }
                }
            }
        }
    }

    fn send_next_packet(&mut self) {
        if !self.holding {
            match self.source.read(&mut self.packet) {
                Read::Packet => {}
                Read::End => return self.end_input(),
                Read::Failed(error) => {
                    self.last_error = Some(format!("reading the file failed: {error}"));
                    return self.end_input();
                }
            }
        }
        self.holding = false;
        self.skip_unreferenced(self.shows_before_target());
        match self.codec.send_packet(&self.packet) {
            Ok(()) => {}
            // Full: keep the packet for after the next picture is taken out.
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::ffi::EAGAIN => {
                self.holding = true;
                return;
            }
            // A packet the decoder refuses is skipped, as FFmpeg's command line skips it.
            Err(error) => self.last_error = Some(error.to_string()),
        }
        self.packet_pos = self.packet_pos.map(|p| p + 1);
    }

    /// Whether the packet in `packet` shows a frame before the one `decode_to` heads for.
    fn shows_before_target(&self) -> bool {
        let Some(n) = self.heading_for.filter(|_| self.skip_passed) else {
            return false;
        };
        let shown = PacketInfo::of(&self.packet)
            .pts
            .and_then(|ts| self.frame_index.frame_at_timestamp(ts));
        shown.is_some_and(|m| m < n)
    }

    /// Sets whether the codec skips the next packets' pictures when nothing refers to them.
    fn skip_unreferenced(&mut self, skip: bool) {
        if skip == self.skipping {
            return;
        }
        let discard = if skip {
            ffmpeg::ffi::AVDiscard::AVDISCARD_NONREF
        } else {
            ffmpeg::ffi::AVDiscard::AVDISCARD_DEFAULT
        };
        // SAFETY: `as_mut_ptr` points at the open codec context `self.codec` owns; the field
        // is read by the decoder for each packet sent after this (frame threads copy it when
        // the packet is handed to them).
        unsafe { (*self.codec.as_mut_ptr()).skip_frame = discard };
        self.skipping = skip;
    }

    fn end_input(&mut self) {
        self.input_ended = true;
        let _ = self.codec.send_eof();
    }

    /// Positions the decoder at decode start `start` of the index, checked.
    fn restart(&mut self, start: usize) -> Result<(), VideoError> {
        self.ahead = None;
        self.next = None;
        let target = self.frame_index.starts()[start];
        if target.packet == 0 || self.frame_index.method == IndexMethod::Counted {
            return self.reopen();
        }
        let Some(aim) = target.dts.or(target.pts) else {
            return self.reopen();
        };
        for margin_s in [0.0, 1.0, 10.0, 60.0] {
            let ts = aim.saturating_sub(self.source.ticks(margin_s));
            if !self.source.seek(ts) {
                break;
            }
            self.codec.flush();
            self.input_ended = false;
            self.decoder_ended = false;
            self.errors_in_a_row = 0;
            self.holding = false;
            for _ in 0..SEEK_SEARCH_PACKETS {
                match self.source.read(&mut self.packet) {
                    Read::Packet => {}
                    Read::End | Read::Failed(_) => break,
                }
                let found = PacketInfo::of(&self.packet);
                if found.pts == target.pts && found.dts == target.dts {
                    self.holding = true;
                    self.packet_pos = Some(u64::from(target.packet));
                    return Ok(());
                }
                let past = match (found.dts, target.dts) {
                    (Some(found), Some(target)) => found > target,
                    _ => false,
                };
                if past {
                    break;
                }
            }
        }
        tracing::debug!(path = %self.path.display(), packet = target.packet, "seeking did not reach the keyframe; reading from the top");
        self.reopen()
    }

    /// Opens the file again: decoding from its top always works.
    fn reopen(&mut self) -> Result<(), VideoError> {
        self.source = Source::open(&self.path)?;
        self.codec = self
            .source
            .decoder(self.one_thread)
            .map_err(|e| VideoError::Codec {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        self.holding = false;
        self.skipping = false;
        self.packet_pos = Some(0);
        self.counted = 0;
        self.input_ended = false;
        self.decoder_ended = false;
        self.errors_in_a_row = 0;
        self.next = Some(0);
        Ok(())
    }
}
