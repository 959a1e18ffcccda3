//! What the check embeds both ways: frames spread over the video at hand, built-in images,
//! and prompts to rank them by.

use std::path::Path;

use opencv::core::{Mat, CV_8UC3};
use opencv::prelude::*;

use crate::video::{Decoder, FrameIndex};

/// Frames of the video the check embeds both ways, spread over it.
pub const VIDEO_SAMPLES: usize = 64;

/// Prompts the rankings are compared on: the configured ones, filled up with these.
const GENERAL_PROMPTS: [&str; 10] = [
    "a person",
    "a car on a street",
    "a dog",
    "text on a screen",
    "a building",
    "the sky",
    "a kitchen",
    "a street at night",
    "a forest",
    "a face in close-up",
];

/// Built-in images the check always embeds beside the video's frames: gradients, stripes,
/// a checkerboard, colour bars, noise, circles, flat grey (deterministic, 224 x 224 BGR).
pub fn fixture_images() -> Vec<(&'static str, Mat)> {
    const SIZE: usize = 224;
    let make = |f: &dyn Fn(usize, usize) -> [u8; 3]| -> Mat {
        let mut bytes = Vec::with_capacity(SIZE * SIZE * 3);
        for y in 0..SIZE {
            for x in 0..SIZE {
                bytes.extend_from_slice(&f(x, y));
            }
        }
        let flat = Mat::from_slice(&bytes).expect("a byte buffer");
        flat.reshape(3, SIZE as i32)
            .and_then(|m| m.try_clone())
            .expect("224 x 224 x 3 bytes")
    };
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = vec![0u8; SIZE * SIZE * 3];
    for v in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *v = (state >> 24) as u8;
    }
    let bars = [
        [255, 255, 255],
        [0, 255, 255],
        [255, 255, 0],
        [0, 255, 0],
        [255, 0, 255],
        [0, 0, 255],
        [255, 0, 0],
        [0, 0, 0],
    ];
    let images: Vec<(&'static str, Mat)> = vec![
        (
            "horizontal gradient",
            make(&|x, _| [(x * 255 / SIZE) as u8, 80, (255 - x * 255 / SIZE) as u8]),
        ),
        (
            "vertical gradient",
            make(&|_, y| [40, (y * 255 / SIZE) as u8, 200]),
        ),
        (
            "checkerboard",
            make(&|x, y| {
                if (x / 28 + y / 28) % 2 == 0 {
                    [230, 230, 230]
                } else {
                    [20, 20, 20]
                }
            }),
        ),
        ("colour bars", make(&|x, _| bars[x * 8 / SIZE])),
        (
            "noise",
            make(&|x, y| {
                let i = (y * SIZE + x) * 3;
                [noise[i], noise[i + 1], noise[i + 2]]
            }),
        ),
        (
            "circles",
            make(&|x, y| {
                let (dx, dy) = (x as f32 - 112.0, y as f32 - 112.0);
                let r = (dx * dx + dy * dy).sqrt() as usize;
                if (r / 14) % 2 == 0 {
                    [30, 60, 220]
                } else {
                    [240, 200, 40]
                }
            }),
        ),
        (
            "diagonal stripes",
            make(&|x, y| {
                if ((x + y) / 20) % 2 == 0 {
                    [0, 160, 0]
                } else {
                    [200, 200, 255]
                }
            }),
        ),
        ("flat grey", make(&|_, _| [128, 128, 128])),
    ];
    debug_assert!(images.iter().all(|(_, m)| m.typ() == CV_8UC3));
    images
}

/// Frames spread over the video: `count` positions, each moved back to the keyframe it is
/// decoded from where keyframes are dense enough (so the sample costs about one picture per
/// frame to decode), else the positions themselves.
fn video_frames(
    path: &Path,
    index_dir: Option<&Path>,
    count: usize,
) -> Result<Vec<(u64, Mat)>, crate::video::VideoError> {
    let frame_index = FrameIndex::load_or_build(path, index_dir)?;
    let total = frame_index.frames();
    if total == 0 {
        return Ok(Vec::new());
    }
    let targets: Vec<u64> = (0..count as u64)
        .map(|i| (i * total + total / 2) / count as u64)
        .map(|n| n.min(total - 1))
        .collect();
    let starts = frame_index.starts();
    let mut keyframes: Vec<u64> = targets
        .iter()
        .filter_map(|&n| {
            let start = starts.get(frame_index.start_for(n))?;
            start
                .pts
                .and_then(|pts| frame_index.frame_at_timestamp(pts))
        })
        .collect();
    keyframes.sort_unstable();
    keyframes.dedup();
    let mut frames = if keyframes.len() >= count / 2 {
        keyframes
    } else {
        targets
    };
    frames.dedup();
    let mut decoder = Decoder::with_index(path, frame_index)?;
    frames
        .into_iter()
        .map(|n| decoder.frame(n).map(|m| (n, m)))
        .collect()
}

/// A sample to check on: the video at hand's frames (if it opens) and the built-in images.
pub struct Sample {
    pub video: Option<String>,
    /// (label, frame), video frames first.
    pub images: Vec<(String, Mat)>,
    pub video_frames: usize,
    pub prompts: Vec<String>,
}

impl Sample {
    /// [`VIDEO_SAMPLES`] frames of `video` (where given and readable; a video that cannot be
    /// read is logged and left out), the built-in images, and the configured prompts filled
    /// up to ten with general ones.
    pub fn gather(video: Option<&Path>, index_dir: Option<&Path>, prompts: &[String]) -> Self {
        let mut images = Vec::new();
        let mut name = None;
        if let Some(path) = video.filter(|p| p.is_file()) {
            match video_frames(path, index_dir, VIDEO_SAMPLES) {
                Ok(frames) => {
                    name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                    images.extend(frames.into_iter().map(|(n, m)| (format!("frame {n}"), m)));
                }
                Err(e) => tracing::warn!("precision check without the video's frames: {e}"),
            }
        }
        let video_frames = images.len();
        images.extend(
            fixture_images()
                .into_iter()
                .map(|(label, m)| (format!("built-in image: {label}"), m)),
        );
        let mut prompts: Vec<String> = prompts
            .iter()
            .filter(|p| !p.trim().is_empty())
            .cloned()
            .collect();
        for general in GENERAL_PROMPTS {
            if prompts.len() >= 10 {
                break;
            }
            if !prompts.iter().any(|p| p == general) {
                prompts.push(general.to_string());
            }
        }
        Self {
            video: name,
            images,
            video_frames,
            prompts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_images_are_distinct_bgr_images() {
        let images = fixture_images();
        assert_eq!(images.len(), 8);
        let bytes: Vec<Vec<u8>> = images
            .iter()
            .map(|(_, m)| {
                assert_eq!((m.rows(), m.cols(), m.typ()), (224, 224, CV_8UC3));
                m.data_bytes().unwrap().to_vec()
            })
            .collect();
        for i in 0..bytes.len() {
            for j in i + 1..bytes.len() {
                assert_ne!(bytes[i], bytes[j], "{} and {}", images[i].0, images[j].0);
            }
        }
    }
}
