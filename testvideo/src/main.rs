//! `make-test-video OUT [--frames N] [--keyframe-interval K]`: an H.264 MP4 whose frames carry
//! their own index (see the library), for the end-to-end suite (`scripts/e2e-server.sh`).

use std::path::PathBuf;

use clap::Parser;

/// Write a 1280x720, 30 fps H.264 test video whose frames carry their own index.
#[derive(Parser)]
#[command(name = "make-test-video")]
struct Args {
    output: PathBuf,
    #[arg(long, default_value_t = 300)]
    frames: u32,
    #[arg(long, default_value_t = 250)]
    keyframe_interval: u32,
}

fn main() {
    let args = Args::parse();
    let spec = testvideo::Spec {
        keyframe_interval: args.keyframe_interval,
        ..testvideo::Spec::new(testvideo::Codec::H264, args.frames)
    };
    if let Err(message) = testvideo::write(&args.output, &spec) {
        eprintln!("error: cannot write {}: {message}", args.output.display());
        std::process::exit(1);
    }
}
