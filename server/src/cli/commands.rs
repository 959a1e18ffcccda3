//! The CLIP subcommands: `index`, `scores`, `search`, `export`, `cache`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use app::scores::{fill_radius, sigmoid_per_prompt, smooth, softmax_over_prompts};
use app::types::format_time;
use serde_json::json;

use super::args::{CacheAction, ExportFormat, ModelArgs};
use super::settings::{resolve, ConfigArg};
use super::CommandResult;
use crate::cache::{EmbeddingFile, ModelKey, TextCache};
use crate::config::Settings;
use crate::embed::Embedder;
use crate::index::{index_video, load_cache, IndexOptions, Progress, VideoToIndex};

/// The config's indexing options with the command's `--sample-fps` and `--batch-size`.
fn index_options(
    settings: &Settings,
    sample_fps: Option<f64>,
    batch_size: Option<usize>,
) -> IndexOptions {
    let options = IndexOptions::from(settings);
    IndexOptions {
        sample_fps: sample_fps.or(options.sample_fps),
        batch_size: batch_size.unwrap_or(options.batch_size),
        // The CLI indexes straight unless `index --progressive` says otherwise.
        coarse_interval_s: None,
        ..options
    }
}

fn check_sampling(sample_fps: Option<f64>, batch_size: Option<usize>) -> CommandResult {
    if let Some(fps) = sample_fps {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(format!("--sample-fps must be a positive number, not {fps}"));
        }
    }
    if let Some(size) = batch_size {
        if !(1..=256).contains(&size) {
            return Err(format!("--batch-size must be from 1 to 256, not {size}"));
        }
    }
    Ok(())
}

pub fn index(
    path: &Path,
    args: &ModelArgs,
    sample_fps: Option<f64>,
    batch_size: Option<usize>,
    json: bool,
    checkpoint_secs: f64,
    // `Some`: coarse to fine, at this first spacing in seconds or the config's.
    progressive: Option<Option<f64>>,
) -> CommandResult {
    check_sampling(sample_fps, batch_size)?;
    let settings = resolve(args)?;
    let mut options = index_options(&settings, sample_fps, batch_size);
    options.checkpoint_every = Duration::from_secs_f64(checkpoint_secs.max(0.0));
    if let Some(interval) = progressive {
        let interval = interval.unwrap_or(settings.coarse_interval_s);
        if !(interval.is_finite() && interval > 0.0) {
            return Err(format!(
                "--coarse-interval must be a positive number of seconds, not {interval}"
            ));
        }
        if options.skip_similar.is_some() {
            return Err("--progressive cannot skip similar frames (each frame is compared with the one before it, so that index runs in order); drop --skip-similar or --progressive".into());
        }
        options.coarse_interval_s = Some(interval);
    }
    let video = VideoToIndex::open(path, Some(&options.cache_dir))?;
    let embedder = crate::embed::load(&settings)?;
    let progress = Progress::default();
    let cancel = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        if !json {
            let (progress, finished) = (&progress, &finished);
            scope.spawn(move || draw_progress(progress, finished));
        }
        let report = index_video(&video, embedder.as_ref(), &options, &progress, &cancel);
        finished.store(true, std::sync::atomic::Ordering::Relaxed);
        report
    })
    .map_err(|e| e.to_string())?;
    if let Some(problem) = &report.cache_problem {
        eprintln!("note: {problem}");
    }
    let fps = (report.embedded + report.reused) as f64 / report.seconds.max(1e-9);
    if json {
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
            "peak_rss_mb": peak_rss_mb(),
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
    } else {
        let reused = if options.skip_similar.is_some() {
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
    Ok(())
}

/// The process's peak resident memory (Linux `VmHWM`), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn draw_progress(progress: &Progress, finished: &AtomicBool) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} frames {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while !finished.load(std::sync::atomic::Ordering::Relaxed) {
        let status = progress.snapshot();
        bar.set_length(status.total);
        bar.set_position(status.done);
        let eta = app::status::time_left(status.eta_s);
        let pass = app::status::pass_text(&status);
        bar.set_message(format!("{:.1} frames/s{eta}{pass}", status.frames_per_s));
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish_and_clear();
}

/// An indexed video with its embeddings and the model that made them.
pub(super) struct Indexed {
    pub(super) video: VideoToIndex,
    /// The video's frame index when it was at hand or saved: exact frame times.
    pub(super) frame_index: Option<Arc<crate::video::FrameIndex>>,
    pub(super) file: EmbeddingFile,
    pub(super) embedder: Arc<dyn Embedder>,
    pub(super) settings: Settings,
    pub(super) radius: u64,
    pub(super) complete: bool,
}

pub(super) fn open_indexed(
    path: &Path,
    args: &ModelArgs,
    sample_fps: Option<f64>,
) -> Result<Indexed, String> {
    check_sampling(sample_fps, None)?;
    let settings = resolve(args)?;
    let options = index_options(&settings, sample_fps, None);
    let embedder = crate::embed::load_lazy(&settings)?;
    let (video, cached) = VideoToIndex::open_indexed(path, embedder.as_ref(), &options)?;
    let file = match cached {
        Some(file) => file,
        None => {
            let (_, file, problem) = load_cache(&video, embedder.as_ref(), &options);
            if let Some(problem) = problem {
                eprintln!("note: {problem}");
            }
            file
        }
    };
    let planned = video.plan(options.sample_fps).len();
    let frame_index = video
        .frames
        .clone()
        .or_else(|| crate::video::FrameIndex::saved(&options.cache_dir, &video.fingerprint));
    if file.frames.is_empty() {
        return Err(format!(
            "{} is not indexed with {} yet. Run `clip-investigator index {}` first.",
            path.display(),
            embedder.identity().name,
            path.display()
        ));
    }
    if file.covered() < planned {
        eprintln!(
            "note: {} of {planned} frames are indexed; the answer covers those. `clip-investigator index` resumes the rest.",
            file.covered()
        );
    }
    if !file.missing.is_empty() {
        eprintln!(
            "note: {} frames could not be decoded (the file is damaged there): their scores are empty (null in JSON)",
            file.missing.len()
        );
    }
    let radius = fill_radius(video.meta.fps, options.sample_fps);
    let complete = file.covered() == planned;
    Ok(Indexed {
        video,
        frame_index,
        file,
        embedder,
        settings,
        radius,
        complete,
    })
}

impl Indexed {
    /// Seconds from frame 0 to `frame`: its presentation time where the frame index is known.
    pub(super) fn time_s(&self, frame: u64) -> f64 {
        match &self.frame_index {
            Some(index) if frame < index.frames() => index.time_s(frame),
            _ => app::types::seconds_at(frame, self.video.meta.fps),
        }
    }
}

/// Text embeddings through the per-model text cache.
fn embed_prompts(indexed: &Indexed, prompts: &[String]) -> Result<Vec<Vec<f32>>, String> {
    app::api::check_prompts(prompts)?;
    for prompt in prompts {
        if indexed.embedder.is_truncated(prompt) {
            eprintln!(
                "note: the prompt {:?} is longer than CLIP's 77 tokens; only its start is used",
                prompt.chars().take(60).collect::<String>()
            );
        }
    }
    let mut cache = TextCache::open(
        &indexed.settings.embeddings_dir,
        ModelKey::from(&indexed.embedder.identity()),
    );
    cache
        .embed(|chunk| indexed.embedder.embed_texts(chunk), prompts)
        .map_err(|e| e.to_string())
}

fn prompts_or_config(prompts: Vec<String>, settings: &Settings) -> Result<Vec<String>, String> {
    let prompts = if prompts.is_empty() {
        settings.prompts.clone()
    } else {
        prompts
    };
    if prompts.is_empty() {
        return Err(
            "no prompts: pass --prompt TEXT (repeatable) or list them under CLIP: in the config"
                .into(),
        );
    }
    Ok(prompts)
}

/// What the values are: "cosine", or the probabilities of the model's family.
fn view_name(probabilities: bool, sigmoid: bool) -> &'static str {
    match (probabilities, sigmoid) {
        (false, _) => "cosine",
        (true, false) => "softmax",
        (true, true) => "sigmoid",
    }
}

/// Per-frame series for frames `0..covered`, after the optional probabilities (the model's
/// own: CLIP's softmax over the prompts, SigLIP's sigmoid per prompt) and smoothing.
pub(super) fn score_table(
    indexed: &Indexed,
    prompts: &[String],
    window: usize,
    probabilities: bool,
) -> Result<(u64, Vec<Vec<f32>>), String> {
    let vectors = embed_prompts(indexed, prompts)?;
    let (covered, mut series) =
        crate::search::frame_scores(&indexed.file, &vectors, indexed.radius, indexed.complete);
    if probabilities {
        let scale = indexed.embedder.logit_scale();
        series = match indexed.embedder.logit_bias() {
            Some(bias) => sigmoid_per_prompt(&series, scale, bias),
            None => softmax_over_prompts(&series, scale),
        };
    }
    Ok((covered, series.iter().map(|s| smooth(s, window)).collect()))
}

pub fn scores(
    path: &Path,
    args: &ModelArgs,
    sample_fps: Option<f64>,
    prompts: Vec<String>,
    window: usize,
    softmax: bool,
    json: bool,
) -> CommandResult {
    if args.model.len() > 1 {
        return compare_models(path, args, sample_fps, prompts, window, softmax, json);
    }
    let indexed = open_indexed(path, args, sample_fps)?;
    let prompts = prompts_or_config(prompts, &indexed.settings)?;
    let (covered, series) = score_table(&indexed, &prompts, window, softmax)?;
    if json {
        let scores = by_prompt(&prompts, &series);
        let value = json!({
            "video": path.file_name().map(|n| n.to_string_lossy()),
            "model": indexed.embedder.identity().name,
            "fps": indexed.video.meta.fps,
            "frames": (0..covered).collect::<Vec<u64>>(),
            "times_s": (0..covered).map(|n| indexed.time_s(n)).collect::<Vec<f64>>(),
            "missing": indexed.file.missing,
            "view": view_name(softmax, indexed.embedder.logit_bias().is_some()),
            "scores": scores,
        });
        print_json(&value)
    } else {
        println!("{} frames scored", covered);
        for (prompt, s) in prompts.iter().zip(&series) {
            let known = || s.iter().enumerate().filter(|(_, v)| !v.is_nan());
            let best = known()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(n, v)| {
                    format!(
                        "best {v:.4} at frame {n} ({})",
                        format_time(indexed.time_s(n as u64))
                    )
                })
                .unwrap_or_default();
            let mean = known().map(|(_, v)| v).sum::<f32>() / known().count().max(1) as f32;
            println!("  {prompt:?}: mean {mean:.4}, {best}");
        }
        Ok(())
    }
}

/// `scores --model A --model B …`: each model's scores of the same video (each indexed with
/// that model), and for two models their difference A - B per prompt, over the frames both
/// cover, where the models disagree most.
fn compare_models(
    path: &Path,
    args: &ModelArgs,
    sample_fps: Option<f64>,
    prompts: Vec<String>,
    window: usize,
    softmax: bool,
    json: bool,
) -> CommandResult {
    let mut runs = Vec::new();
    let mut prompts = prompts;
    for (i, model) in args.model.iter().enumerate() {
        let one = ModelArgs {
            model: vec![model.clone()],
            ..args.clone()
        };
        let indexed = open_indexed(path, &one, sample_fps)?;
        // The models share the config, and so its prompts.
        if i == 0 {
            prompts = prompts_or_config(prompts, &indexed.settings)?;
        }
        let (covered, series) = score_table(&indexed, &prompts, window, softmax)?;
        runs.push((indexed, covered, series));
    }
    // Two models: A - B over the frames both cover.
    let difference: Option<Vec<Vec<f32>>> = match runs.as_slice() {
        [(_, covered_a, a), (_, covered_b, b)] => Some(
            a.iter()
                .zip(b)
                .map(|(a, b)| {
                    let both = (*covered_a).min(*covered_b) as usize;
                    a.iter().zip(b).take(both).map(|(x, y)| x - y).collect()
                })
                .collect(),
        ),
        _ => None,
    };
    if json {
        let models: Vec<serde_json::Value> = runs
            .iter()
            .map(|(indexed, covered, series)| {
                json!({
                    "model": indexed.embedder.identity().name,
                    "frames": (0..*covered).collect::<Vec<u64>>(),
                    "missing": indexed.file.missing,
                    // Each model's own probabilities: a CLIP and a SigLIP differ.
                    "view": view_name(softmax, indexed.embedder.logit_bias().is_some()),
                    "scores": by_prompt(&prompts, series),
                })
            })
            .collect();
        let mut value = json!({
            "video": path.file_name().map(|n| n.to_string_lossy()),
            "fps": runs[0].0.video.meta.fps,
            "models": models,
        });
        if let Some(difference) = &difference {
            value["difference"] = json!(by_prompt(&prompts, difference));
        }
        return print_json(&value);
    }
    for (indexed, covered, _) in &runs {
        println!(
            "{}: {covered} frames scored",
            indexed.embedder.identity().name
        );
    }
    if let Some(difference) = &difference {
        let (a, b) = (
            runs[0].0.embedder.identity().name,
            runs[1].0.embedder.identity().name,
        );
        println!("{a} - {b}:");
        for (prompt, d) in prompts.iter().zip(difference) {
            let widest = d
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()));
            match widest {
                Some((n, v)) => println!(
                    "  {prompt:?}: they disagree most at frame {n} ({}): {v:+.4}",
                    format_time(runs[0].0.time_s(n as u64))
                ),
                None => println!("  {prompt:?}: no frame scored by both"),
            }
        }
    }
    Ok(())
}

/// `{"PROMPT": [value per frame]}`.
fn by_prompt(
    prompts: &[String],
    series: &[Vec<f32>],
) -> serde_json::Map<String, serde_json::Value> {
    prompts
        .iter()
        .zip(series)
        .map(|(p, s)| (p.clone(), json!(s)))
        .collect()
}

/// Writes JSON to stdout, treating a closed pipe (`| head`) as success.
pub(super) fn print_json(value: &serde_json::Value) -> CommandResult {
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out))
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write: {e}")),
        _ => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn search(
    path: &Path,
    args: &ModelArgs,
    sample_fps: Option<f64>,
    text: Option<&str>,
    image: Option<&Path>,
    top: usize,
    min_gap_s: f64,
    json: bool,
) -> CommandResult {
    if !(min_gap_s.is_finite() && min_gap_s >= 0.0) {
        return Err(format!("--min-gap-s must be 0 or more, not {min_gap_s}"));
    }
    let indexed = open_indexed(path, args, sample_fps)?;
    let mut queries = Vec::new();
    if let Some(text) = text {
        queries.extend(embed_prompts(&indexed, &[text.to_string()])?);
    }
    if let Some(image) = image {
        let bytes =
            std::fs::read(image).map_err(|e| format!("cannot read {}: {e}", image.display()))?;
        let frame = crate::video::decode_image(&bytes).map_err(|_| {
            format!(
                "{} is not an image OpenCV can read (JPEG, PNG, BMP, WebP…)",
                image.display()
            )
        })?;
        queries.extend(
            indexed
                .embedder
                .embed_images(std::slice::from_ref(&frame))
                .map_err(|e| e.to_string())?,
        );
    }
    let query = crate::search::combine(&queries);
    let fps = indexed.video.meta.fps;
    let min_gap = (min_gap_s * fps).round() as u64;
    let hits = crate::search::top_k(&indexed.file, &query, top, min_gap);
    if json {
        let results: Vec<_> = hits
            .iter()
            .map(|h| json!({"frame": h.frame, "time_s": indexed.time_s(h.frame), "score": h.score}))
            .collect();
        print_json(&json!({ "results": results }))
    } else {
        for (rank, hit) in hits.iter().enumerate() {
            println!(
                "{:>3}. frame {:>7}  {}  score {:.4}",
                rank + 1,
                hit.frame,
                format_time(indexed.time_s(hit.frame)),
                hit.score
            );
        }
        Ok(())
    }
}

pub fn export(
    path: &Path,
    args: &ModelArgs,
    sample_fps: Option<f64>,
    format: ExportFormat,
    output: &Path,
    prompts: Vec<String>,
) -> CommandResult {
    let indexed = open_indexed(path, args, sample_fps)?;
    let bytes = match format {
        ExportFormat::Npy => npy(&indexed.file),
        ExportFormat::Csv | ExportFormat::Json => {
            let prompts = prompts_or_config(prompts, &indexed.settings)?;
            let (covered, series) = score_table(&indexed, &prompts, 1, false)?;
            let fps = indexed.video.meta.fps;
            if format == ExportFormat::Csv {
                let mut csv = String::from("frame,time_s");
                for p in &prompts {
                    csv.push(',');
                    csv.push_str(&csv_field(p));
                }
                csv.push('\n');
                for n in 0..covered as usize {
                    csv.push_str(&format!("{n},{:.6}", indexed.time_s(n as u64)));
                    for s in &series {
                        // A frame that could not be decoded has no value: an empty field.
                        if s[n].is_nan() {
                            csv.push(',');
                        } else {
                            csv.push_str(&format!(",{}", s[n]));
                        }
                    }
                    csv.push('\n');
                }
                csv.into_bytes()
            } else {
                let scores = by_prompt(&prompts, &series);
                serde_json::to_vec(&json!({
                    "video": path.file_name().map(|n| n.to_string_lossy()),
                    "model": indexed.embedder.identity().name,
                    "fps": fps,
                    "frames": (0..covered).collect::<Vec<u64>>(),
                    "times_s": (0..covered).map(|n| indexed.time_s(n)).collect::<Vec<f64>>(),
                    "missing": indexed.file.missing,
                    "scores": scores,
                }))
                .map_err(|e| e.to_string())?
            }
        }
    };
    write_file(output, &bytes)?;
    eprintln!("wrote {}", output.display());
    Ok(())
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The embeddings as a NumPy `.npy` file: float32, shape (frames, dimension), C order.
fn npy(file: &EmbeddingFile) -> Vec<u8> {
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        file.frames.len(),
        file.dimension()
    );
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let mut out = Vec::with_capacity(unpadded + padding + file.vectors.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((header.len() + padding + 1) as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    for v in &file.vectors {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes atomically, so a failed export never leaves half a file under the name.
pub(super) fn write_file(path: &Path, bytes: &[u8]) -> CommandResult {
    let temporary = PathBuf::from(format!("{}.partial", path.display()));
    std::fs::write(&temporary, bytes)
        .and_then(|_| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            format!("cannot write {}: {e}", path.display())
        })
}

pub fn cache(action: CacheAction, config: &Path) -> CommandResult {
    let settings = resolve(&ConfigArg(config))?;
    let dir = &settings.embeddings_dir;
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.contains(".clipemb")
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    files.sort();
    match action {
        CacheAction::List => {
            if files.is_empty() {
                println!("{}: no cache files", dir.display());
            }
            for path in &files {
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let what = match EmbeddingFile::peek(path) {
                    Ok(file) => format!(
                        "{} frames of a {}-frame video, {} ({}-d){}{}",
                        file.frames.len(),
                        file.header.video_frames,
                        file.header.model.name,
                        file.header.model.dimension,
                        file.header
                            .sample_fps_millis
                            .map(|m| format!(", {} fps sampled", m as f64 / 1000.0))
                            .unwrap_or_default(),
                        file.skip
                            .as_ref()
                            .map(|s| format!(
                                ", {} reused the frame before's vector (skip below {} grey levels)",
                                s.reused.len(),
                                s.threshold_milli_levels as f64 / 1000.0
                            ))
                            .unwrap_or_default()
                    ),
                    Err(_) if name.starts_with("texts-") => "text embeddings".into(),
                    Err(reason) => format!("unreadable: {reason}"),
                };
                println!("{name}  {:.1} MB  {what}", size as f64 / 1e6);
            }
            Ok(())
        }
        CacheAction::Clear => {
            for path in &files {
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            }
            println!("removed {} cache files from {}", files.len(), dir.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_headers_are_aligned_and_describe_the_matrix() {
        let mut file = EmbeddingFile::new(crate::cache::CacheHeader {
            format_version: crate::cache::FORMAT_VERSION,
            model: crate::cache::ModelKey {
                name: "m".into(),
                revision: "r".into(),
                dimension: 3,
            },
            video: crate::cache::VideoFingerprint {
                size: 1,
                chunks_hash: 2,
            },
            sample_fps_millis: None,
            video_frames: 2,
            video_fps_micros: 30_000_000,
        });
        file.frames = vec![0, 1];
        file.vectors = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bytes = npy(&file);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 3)") && header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + header_len + 6 * 4);
        assert_eq!(
            &bytes[10 + header_len..10 + header_len + 4],
            &1f32.to_le_bytes()
        );
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a cat"), "a cat");
        assert_eq!(csv_field("cats, dogs"), "\"cats, dogs\"");
        assert_eq!(csv_field("a \"big\" cat"), "\"a \"\"big\"\" cat\"");
    }
}
