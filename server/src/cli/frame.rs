//! `frame`: frame N of a video as a full-resolution JPEG.

use anyhow::Context;
use engine::video::{encode_jpeg, Decoder};

use super::args::FrameArgs;
use super::output::write_file;
use super::CommandResult;

pub fn run(args: &FrameArgs) -> CommandResult {
    let mut decoder = Decoder::open(&args.video).context("cannot open the video")?;
    let image = decoder.frame(args.n)?;
    let jpeg = encode_jpeg(&image, 0, args.quality).context("JPEG encoding failed")?;
    write_file(&args.output, &jpeg)
}
