//! `index`: embeds every (sampled) frame of a video into its cache file, with a progress bar;
//! resumes where an earlier run stopped. Straight by default, coarse to fine with
//! `--progressive` (the same file in the end).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use engine::indexing::{index_video, Progress, VideoToIndex};
use serde_json::json;

use super::args::IndexArgs;
use super::settings::{check_sampling, index_options, resolve};
use super::{progress, CommandResult};

pub fn run(args: &IndexArgs) -> CommandResult {
    if args.library {
        check_sampling(args.sample_fps, args.batch_size)?;
        return super::library::index(args);
    }
    let Some(path) = args.video.as_deref() else {
        bail!("give a VIDEO to index, or --library");
    };
    check_sampling(args.sample_fps, args.batch_size)?;
    let mut settings = resolve(&args.model)?;
    // The video at hand is the one a first int8 check samples.
    settings.video_path = path.to_path_buf();
    let mut options = index_options(&settings, args.sample_fps, args.batch_size);
    options.checkpoint_every = Duration::from_secs_f64(args.checkpoint_secs.max(0.0));
    if args.progressive {
        let interval = args.coarse_interval.unwrap_or(settings.coarse_interval_s);
        if !(interval.is_finite() && interval > 0.0) {
            bail!("--coarse-interval must be a positive number of seconds, not {interval}");
        }
        if options.skip_similar.is_some() {
            bail!("--progressive cannot skip similar frames (each frame is compared with the one before it, so that index runs in order); drop --skip-similar or --progressive");
        }
        options.coarse_interval_s = Some(interval);
    }
    let video = VideoToIndex::open(path, Some(&options.cache_dir))
        .context("cannot open the video to index")?;
    let embedder = engine::precision::load(&settings).context("cannot load the model")?;
    let progress = Progress::default();
    let cancel = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        if !args.json {
            let (progress, finished) = (&progress, &finished);
            scope.spawn(move || progress::draw(progress, finished));
        }
        let report = index_video(&video, embedder.as_ref(), &options, &progress, &cancel);
        finished.store(true, Ordering::Relaxed);
        report
    })
    .with_context(|| format!("indexing {} stopped", path.display()))?;
    if let Some(problem) = &report.cache_problem {
        eprintln!("note: {problem}");
    }
    let fps = (report.embedded + report.reused) as f64 / report.seconds.max(1e-9);
    if args.json {
        let value = json!({
            "cache": report.cache_path,
            "planned": report.planned,
            "resumed": report.resumed,
            "embedded": report.embedded,
            "reused": report.reused,
            "missing": report.missing,
            "seconds": report.seconds,
            "frames_per_s": fps,
            "model": embedder.identity().name,
            "precision": embedder.precision().map(|p| p.as_str()),
            "precision_note": embedder.precision_note(),
            "peak_rss_mb": progress::peak_rss_mb(),
            "passes": report.passes.iter().map(|p| json!({
                "spacing_frames": p.spacing_frames,
                "frames": p.frames,
                "decoded": p.decoded,
                "decoded_per_embedded": p.decoded as f64 / p.frames.max(1) as f64,
                "seconds": p.seconds,
                "finished_at_s": p.finished_at_s,
                "kept_for_later": p.kept_for_later,
            })).collect::<Vec<_>>(),
        });
        println!("{value}");
        return Ok(());
    }
    print_summary(path, &report, options.skip_similar.is_some(), fps);
    Ok(())
}

fn print_summary(path: &Path, report: &engine::indexing::IndexReport, skipping: bool, fps: f64) {
    let reused = if skipping {
        format!(
            "; {} of them similar to the frame before, not embedded",
            report.reused
        )
    } else {
        String::new()
    };
    println!(
        "{}: {} frames indexed ({} from an earlier run, {} now at {fps:.1} frames/s{reused}) → {}",
        path.display(),
        report.resumed + report.embedded + report.reused,
        report.resumed,
        report.embedded + report.reused,
        report.cache_path.display()
    );
    if report.passes.len() > 1 {
        for (i, pass) in report.passes.iter().enumerate() {
            println!(
                "  pass {}: {} frames in {:.1} s (done at {:.1} s), then 1 sample / {} frames; {:.1} frames decoded per frame embedded{}",
                i + 1,
                pass.frames,
                pass.seconds,
                pass.finished_at_s,
                pass.spacing_frames,
                pass.decoded as f64 / pass.frames.max(1) as f64,
                match pass.kept_for_later {
                    0 => String::new(),
                    kept => format!("; {kept} frames of the next passes kept on the way"),
                }
            );
        }
    }
    if report.missing > 0 {
        println!(
            "{} frames could not be decoded (the file is damaged there); they are recorded as missing and shown as gaps",
            report.missing
        );
    }
}
