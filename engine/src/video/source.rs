//! A video file opened with FFmpeg's libraries: the video stream FFmpeg's command line would
//! pick, what the container says about it, and its packets in decode order.
//!
//! Invariants:
//! - Only local files are opened (`protocol_whitelist=file`) and only as one of the demuxers
//!   in [`DEMUXERS`]: a playlist or concat script disguised as a video cannot make the server
//!   read other files or open network connections.
//! - Packets of the other streams are discarded by the demuxer, never returned.

use std::ffi::CString;
use std::path::Path;
use std::sync::Once;

use ffmpeg::ffi;
use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

use super::VideoError;

/// Demuxers a video may be opened with (FFmpeg's names). Everything a camera, a phone, a
/// broadcast capture or an editor writes is here; playlists (hls, concat) and image sequences
/// (image2), which open other files, are not.
const DEMUXERS: &str = "mov,matroska,avi,mpegts,mpeg,mpegvideo,flv,asf,ogg,yuv4mpegpipe,h264,hevc,m4v,mjpeg,ivf,nut,mxf,dv,rm,webm_dash_manifest";

pub(super) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Fills ffmpeg-next's table of error messages (and registers nothing else on 5.1).
        let _ = ffmpeg::init();
        // Decoding a damaged file makes FFmpeg print a line per broken slice; the server says
        // what went wrong in its own words instead.
        ffmpeg::log::set_level(ffmpeg::log::Level::Quiet);
    });
}

/// What the container and the stream's parameters say: read once, stored with the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamFacts {
    /// FFmpeg's demuxer, e.g. `mov,mp4,m4a,3gp,3g2,mj2` or `mpegts`.
    pub container: String,
    /// FFmpeg's decoder, e.g. `h264`.
    pub codec: String,
    /// The stream's index in the file.
    pub stream: usize,
    /// Size as decoded, before rotation.
    pub coded_width: u32,
    pub coded_height: u32,
    /// Clockwise rotation applied to show the frame upright: 0, 90, 180 or 270 (the display
    /// matrix, read as FFmpeg's command line reads it).
    pub rotation: u16,
    /// Timestamps are in units of `time_base_num / time_base_den` seconds.
    pub time_base_num: i32,
    pub time_base_den: i32,
    /// The stream's average frame rate as the container states it (0/0 when unknown).
    pub rate_num: i32,
    pub rate_den: i32,
    /// Frames the container claims (MP4 and MOV store it), before edit lists.
    pub container_frames: Option<u64>,
    /// Where the video stream starts on the file's clock, in seconds.
    pub start_time_s: Option<f64>,
    pub audio: Vec<AudioFacts>,
}

impl StreamFacts {
    /// Width and height as shown (rotated by a quarter turn: swapped).
    pub fn display_size(&self) -> (u32, u32) {
        if self.rotation % 180 == 90 {
            (self.coded_height, self.coded_width)
        } else {
            (self.coded_width, self.coded_height)
        }
    }

    pub fn seconds(&self, ticks: i64) -> f64 {
        if self.time_base_den == 0 {
            return 0.0;
        }
        ticks as f64 * f64::from(self.time_base_num) / f64::from(self.time_base_den)
    }

    /// The container's frame rate, if it states a plausible one.
    pub fn stated_rate(&self) -> Option<f64> {
        let rate = f64::from(self.rate_num) / f64::from(self.rate_den);
        (self.rate_den != 0 && rate.is_finite() && rate > 0.0 && rate < 10_000.0).then_some(rate)
    }
}

/// An audio stream, for cutting clips with their sound later.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AudioFacts {
    pub stream: usize,
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    /// Where the audio starts on the file's clock, in seconds.
    pub start_time_s: Option<f64>,
}

/// One packet of the video stream, as the index needs it.
#[derive(Clone, Copy, Debug)]
pub(super) struct PacketInfo {
    pub pts: Option<i64>,
    pub dts: Option<i64>,
    pub key: bool,
    /// Marked by the demuxer as outside the edit list: decoded for reference, never shown.
    pub discard: bool,
}

impl PacketInfo {
    pub fn of(packet: &ffmpeg::Packet) -> Self {
        // SAFETY: `as_ptr` points at the packet this borrow keeps alive.
        let flags = unsafe { (*ffmpeg::packet::Ref::as_ptr(packet)).flags };
        Self {
            pts: packet.pts(),
            dts: packet.dts(),
            key: flags & ffi::AV_PKT_FLAG_KEY != 0,
            discard: flags & ffi::AV_PKT_FLAG_DISCARD != 0,
        }
    }
}

/// How reading the next packet went.
pub(super) enum Read {
    /// A packet of the video stream is in the buffer.
    Packet,
    /// The file ended.
    End,
    /// The demuxer failed; FFmpeg's command line treats this as the end of the file too.
    Failed(ffmpeg::Error),
}

/// An open file, positioned somewhere in its video stream.
pub(super) struct Source {
    pub input: ffmpeg::format::context::Input,
    pub facts: StreamFacts,
}

// SAFETY (for the raw calls below): `input` owns the AVFormatContext for as long as `Source`
// lives, and `facts.stream` is an index that `open` checked against its stream count.
impl Source {
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        check_file(path)?;
        init();
        let cannot_open = || VideoError::CannotOpen(path.to_path_buf());
        let url = CString::new([b"file:".as_slice(), path.as_os_str().as_encoded_bytes()].concat())
            .map_err(|_| cannot_open())?;
        let mut options = ffmpeg::Dictionary::new();
        options.set("protocol_whitelist", "file");
        options.set("format_whitelist", DEMUXERS);
        let input = unsafe {
            let mut context = std::ptr::null_mut();
            let mut raw_options = options.disown();
            let opened = ffi::avformat_open_input(
                &mut context,
                url.as_ptr(),
                std::ptr::null_mut(),
                &mut raw_options,
            );
            ffmpeg::Dictionary::own(raw_options);
            if opened < 0 {
                return Err(cannot_open());
            }
            if ffi::avformat_find_stream_info(context, std::ptr::null_mut()) < 0 {
                ffi::avformat_close_input(&mut context);
                return Err(cannot_open());
            }
            ffmpeg::format::context::Input::wrap(context)
        };
        let stream =
            best_video_stream(&input).ok_or_else(|| VideoError::NoVideo(path.to_path_buf()))?;
        let facts = facts(&input, stream);
        let mut source = Self { input, facts };
        source.discard_other_streams();
        Ok(source)
    }

    fn discard_other_streams(&mut self) {
        unsafe {
            let context = self.input.as_mut_ptr();
            for i in 0..(*context).nb_streams as usize {
                if i != self.facts.stream {
                    (**(*context).streams.add(i)).discard = ffi::AVDiscard::AVDISCARD_ALL;
                }
            }
        }
    }

    /// A decoder for the video stream, threaded as FFmpeg's command line threads it (or on one
    /// thread: see [`Decoder::single_threaded`](super::Decoder::single_threaded)).
    pub fn decoder(&self, one_thread: bool) -> Result<ffmpeg::decoder::Video, ffmpeg::Error> {
        let stream = self
            .input
            .stream(self.facts.stream)
            .ok_or(ffmpeg::Error::StreamNotFound)?;
        let mut context = ffmpeg::codec::Context::from_parameters(stream.parameters())?;
        unsafe {
            let raw = context.as_mut_ptr();
            // 0 = as many threads as cores; frame and slice threading, like `ffmpeg -threads auto`.
            (*raw).thread_count = if one_thread { 1 } else { 0 };
            (*raw).thread_type = ffi::FF_THREAD_FRAME | ffi::FF_THREAD_SLICE;
            (*raw).pkt_timebase = (*stream.as_ptr()).time_base;
        }
        context.decoder().video()
    }

    /// Reads the next packet of the video stream into `packet` (whatever it held is released).
    pub fn read(&mut self, packet: &mut ffmpeg::Packet) -> Read {
        loop {
            // FFmpeg 5.1's av_read_frame resets the packet without releasing its buffer: a
            // reused packet would leak every buffer it held.
            // SAFETY: the packet is ours; unreferencing leaves it blank and valid.
            unsafe { ffi::av_packet_unref(ffmpeg::packet::Mut::as_mut_ptr(packet)) };
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() == self.facts.stream => return Read::Packet,
                Ok(()) => continue,
                Err(ffmpeg::Error::Eof) => return Read::End,
                Err(ffmpeg::Error::Other { errno }) if errno == ffi::EAGAIN => continue,
                Err(error) => return Read::Failed(error),
            }
        }
    }

    /// Asks the demuxer to go to the last keyframe at or before `ts` (stream time base).
    pub fn seek(&mut self, ts: i64) -> bool {
        unsafe {
            ffi::avformat_seek_file(
                self.input.as_mut_ptr(),
                self.facts.stream as i32,
                i64::MIN,
                ts,
                ts,
                0,
            ) >= 0
        }
    }

    /// The stream's timestamps for `seconds`.
    pub fn ticks(&self, seconds: f64) -> i64 {
        if self.facts.time_base_num == 0 {
            return 0;
        }
        (seconds * f64::from(self.facts.time_base_den) / f64::from(self.facts.time_base_num)) as i64
    }
}

fn check_file(path: &Path) -> Result<(), VideoError> {
    let meta = std::fs::metadata(path).map_err(|_| VideoError::NotFound(path.to_path_buf()))?;
    if !meta.is_file() {
        return Err(VideoError::NotFound(path.to_path_buf()));
    }
    if meta.len() == 0 {
        return Err(VideoError::Empty(path.to_path_buf()));
    }
    Ok(())
}

/// The video stream `ffmpeg -i FILE OUT` decodes: the largest picture, preferring streams that
/// carry packets and the default disposition; cover art only when nothing else is there.
fn best_video_stream(input: &ffmpeg::format::context::Input) -> Option<usize> {
    let mut best: Option<(i64, usize)> = None;
    for stream in input.streams() {
        let parameters = stream.parameters();
        if parameters.medium() != ffmpeg::media::Type::Video {
            continue;
        }
        // SAFETY: the stream and its parameters belong to `input`.
        let (width, height, disposition, event_flags) = unsafe {
            let raw = stream.as_ptr();
            let codecpar = (*raw).codecpar;
            (
                (*codecpar).width,
                (*codecpar).height,
                (*raw).disposition,
                (*raw).event_flags,
            )
        };
        let mut score = i64::from(width) * i64::from(height)
            + 100_000_000 * i64::from(event_flags & ffi::AVSTREAM_EVENT_FLAG_NEW_PACKETS != 0)
            + 5_000_000 * i64::from(disposition & ffi::AV_DISPOSITION_DEFAULT != 0);
        if disposition & ffi::AV_DISPOSITION_ATTACHED_PIC != 0 {
            score = 1;
        }
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, stream.index()));
        }
    }
    best.map(|(_, index)| index)
}

fn facts(input: &ffmpeg::format::context::Input, index: usize) -> StreamFacts {
    let stream = input.stream(index).expect("index from best_video_stream");
    let time_base = stream.time_base();
    let rate = stream.avg_frame_rate();
    let seconds = |ticks: i64, base: ffmpeg::Rational| {
        (ticks != ffi::AV_NOPTS_VALUE && base.denominator() != 0)
            .then(|| ticks as f64 * f64::from(base.numerator()) / f64::from(base.denominator()))
    };
    let (coded_width, coded_height) = unsafe {
        let codecpar = (*stream.as_ptr()).codecpar;
        (
            (*codecpar).width.max(0) as u32,
            (*codecpar).height.max(0) as u32,
        )
    };
    let audio = input
        .streams()
        .filter(|s| s.parameters().medium() == ffmpeg::media::Type::Audio)
        .map(|s| {
            let (sample_rate, channels) = unsafe {
                let codecpar = (*s.as_ptr()).codecpar;
                (
                    (*codecpar).sample_rate.max(0) as u32,
                    (*codecpar).ch_layout.nb_channels.max(0) as u32,
                )
            };
            AudioFacts {
                stream: s.index(),
                codec: s.parameters().id().name().to_string(),
                sample_rate,
                channels,
                start_time_s: seconds(s.start_time(), s.time_base()),
            }
        })
        .collect();
    StreamFacts {
        container: input.format().name().to_string(),
        codec: stream.parameters().id().name().to_string(),
        stream: index,
        coded_width,
        coded_height,
        rotation: rotation(&stream),
        time_base_num: time_base.numerator(),
        time_base_den: time_base.denominator(),
        rate_num: rate.numerator(),
        rate_den: rate.denominator(),
        container_frames: u64::try_from(stream.frames()).ok().filter(|&n| n > 0),
        start_time_s: seconds(stream.start_time(), time_base),
        audio,
    }
}

/// The clockwise quarter turns that show the picture upright, as `ffmpeg`'s autorotate
/// computes them from the display matrix (other angles are not applied, as there).
fn rotation(stream: &ffmpeg::Stream) -> u16 {
    let degrees = unsafe {
        let mut size = 0;
        let matrix = ffi::av_stream_get_side_data(
            stream.as_ptr(),
            ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
            &mut size,
        );
        if matrix.is_null() || size < 9 * 4 {
            return 0;
        }
        ffi::av_display_rotation_get(matrix as *const i32)
    };
    if !degrees.is_finite() {
        return 0;
    }
    let theta = -degrees.round();
    let theta = theta - 360.0 * (theta / 360.0 + 0.9 / 360.0).floor();
    [0u16, 90, 180, 270]
        .into_iter()
        .find(|&quarter| (theta - f64::from(quarter)).abs() < 1.0)
        .unwrap_or(0)
}
