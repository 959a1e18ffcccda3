//! Long 1280x720 H.264 videos at 30 fps for the benches (x264 ultrafast, a keyframe every 250
//! frames, 2 B-frames): ffmpeg's `testsrc2`, or data/sample.mp4 looped and scaled; lengths over
//! 10 minutes are the 10-minute file joined by stream copy. Made once into cargo's bench tmp
//! dir, never committed.

use std::path::{Path, PathBuf};

/// The folder the videos are kept in.
pub fn folder() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-long-videos");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ffmpeg(args: &[&str]) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg {args:?}");
}

const X264: [&str; 10] = [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-bf",
    "2",
    "-g",
    "250",
    "-pix_fmt",
    "yuv420p",
];

/// `kind` ("testsrc2" or "sample") at `minutes`, made once.
pub fn video(dir: &Path, kind: &str, minutes: u32) -> PathBuf {
    let path = dir.join(format!("{kind}_720p_{minutes}min.mp4"));
    if path.exists() {
        return path;
    }
    let partial = dir.join(format!("{kind}_720p_{minutes}min.partial.mp4"));
    if minutes > 10 && minutes.is_multiple_of(10) {
        let ten = video(dir, kind, 10);
        let list = dir.join(format!("{kind}-{minutes}.txt"));
        let line = format!("file '{}'\n", ten.display());
        std::fs::write(&list, line.repeat(minutes as usize / 10)).unwrap();
        let list = list.to_str().unwrap();
        ffmpeg(&[
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            list,
            "-c",
            "copy",
            partial.to_str().unwrap(),
        ]);
    } else {
        let seconds = (minutes * 60).to_string();
        let source = match kind {
            "testsrc2" => format!("testsrc2=s=1280x720:r=30:d={seconds}"),
            _ => String::new(),
        };
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample.mp4");
        let mut args: Vec<&str> = if kind == "testsrc2" {
            vec!["-f", "lavfi", "-i", &source]
        } else {
            vec![
                "-stream_loop",
                "-1",
                "-i",
                sample.to_str().unwrap(),
                "-vf",
                "scale=1280:720",
                "-r",
                "30",
            ]
        };
        args.extend(["-t", &seconds, "-an"]);
        args.extend(X264);
        args.push(partial.to_str().unwrap());
        ffmpeg(&args);
    }
    std::fs::rename(&partial, &path).unwrap();
    path
}
