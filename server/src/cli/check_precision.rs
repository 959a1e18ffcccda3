//! `check-precision`: the int8 image tower against fp32 on this machine, printed and stored
//! (the stored result is what `precision: int8` and `auto` go by).

use anyhow::{bail, Context};
use engine::embed::local::LocalClip;
use engine::embed::source;
use engine::precision::{check_and_store, Bar, CheckReport};
use store::config::{BackendKind, ImageRuntime, Precision};

use super::args::CheckPrecisionArgs;
use super::output::print_json;
use super::settings::resolve;
use super::CommandResult;

pub fn run(args: &CheckPrecisionArgs) -> CommandResult {
    let mut settings = resolve(&args.model)?;
    match settings.precision {
        Precision::Bf16 => bail!("{}", engine::precision::bf16_refusal()),
        // int8 is the precision there is to check; fp32 is what it is checked against.
        Precision::Fp32 | Precision::Int8 | Precision::Auto => {}
    }
    if settings.backend == BackendKind::Roboflow {
        bail!("check-precision compares the local model's towers: set backend: local");
    }
    if settings.image_runtime == ImageRuntime::Candle {
        bail!("int8 runs on ONNX Runtime: run check-precision with --image-runtime onnxruntime (candle computes fp32 only)");
    }
    if let Some(video) = &args.video {
        if !video.is_file() {
            bail!(
                "{} is not a file: give a video to compare on, or none (the built-in images only)",
                video.display()
            );
        }
        settings.video_path = video.clone();
    }
    let files = source::resolve(&settings.model).context("cannot find the model")?;
    let options = engine::embed::local::LoadOptions {
        runtime: ImageRuntime::Onnxruntime,
        max_patches: settings.max_num_patches,
    };
    let model = LocalClip::load_with(&files.folder, &files.name, options)
        .context("cannot load the model on ONNX Runtime")?;
    let bar = Bar::in_force()?;
    let (report, _) =
        check_and_store(&model, &settings, bar).context("the precision check failed")?;
    print(&report, args.json)
}

fn print(report: &CheckReport, json: bool) -> CommandResult {
    if json {
        print_json(&serde_json::to_value(report)?)
    } else {
        print!("{}", report.table());
        Ok(())
    }
}
