//! `explain`: why frame N scores as it does for a prompt, painted over the frame (PNG) or as
//! JSON (the patch grid, its values row-major, the crop box in frame pixels, the score).

use anyhow::{bail, Context};
use engine::explain::{check_explainable, explain_image, overlay_png};
use engine::video::Decoder;
use serde_json::json;

use super::args::ExplainArgs;
use super::output::{print_json, write_file};
use super::settings::resolve;
use super::CommandResult;

pub fn run(args: &ExplainArgs) -> CommandResult {
    if !(0.0..=1.0).contains(&args.opacity) {
        bail!("--opacity must be between 0 and 1, not {}", args.opacity);
    }
    let settings = resolve(&args.model)?;
    let embedder = engine::precision::load_lazy(&settings).context("cannot load the model")?;
    let mut decoder = Decoder::open(&args.video).context("cannot open the video")?;
    let image = decoder.frame(args.frame)?;
    let cannot = || format!("cannot explain frame {} for {:?}", args.frame, args.prompt);
    check_explainable(embedder.as_ref(), &args.prompt).with_context(cannot)?;
    let text = embedder
        .embed_texts(std::slice::from_ref(&args.prompt))
        .context("cannot embed the prompt")?
        .pop()
        .unwrap_or_default();
    let explanation = explain_image(
        embedder.as_ref(),
        &image,
        args.frame,
        (&args.prompt, &text),
        args.start_layer,
    )
    .with_context(cannot)?;
    if let Some(output) = &args.output {
        let png =
            overlay_png(&image, &explanation, args.opacity).context("cannot paint the heatmap")?;
        write_file(output, &png)?;
    }
    let note = explanation.view_note();
    if args.json {
        let e = &explanation;
        return print_json(&json!({
            "video": args.video,
            "frame": e.frame,
            "prompt": e.prompt,
            "model": e.model,
            "score": {"logit": e.logit, "cosine": e.cosine},
            "layers": e.layers,
            "start_layer": e.start_layer,
            "grid": {"rows": e.rows, "cols": e.cols},
            "values": e.values,
            "crop": {"left": e.crop.left, "top": e.crop.top, "width": e.crop.width, "height": e.crop.height},
            "frame_size": {"width": e.frame_width, "height": e.frame_height},
            "note": note,
        }));
    }
    let (best, _) =
        explanation
            .values
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            );
    let cols = explanation.cols.max(1) as usize;
    println!(
        "frame {} {:?}: logit {:.4} (cosine {:.4}), layers {}..{} of {}; most relevant patch: row {}, column {} of {}x{}",
        explanation.frame,
        explanation.prompt,
        explanation.logit,
        explanation.cosine,
        explanation.start_layer,
        explanation.layers.saturating_sub(1),
        explanation.layers,
        best / cols,
        best % cols,
        explanation.rows,
        explanation.cols,
    );
    if let Some(note) = note {
        println!("note: {note}");
    }
    if let Some(output) = &args.output {
        println!("wrote {}", output.display());
    }
    Ok(())
}
