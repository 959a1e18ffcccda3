//! The `clip-investigator` command line: `args` (the clap types, only there), `settings` (one
//! way from config file, environment and flags to `Settings`, for every subcommand), one file per
//! subcommand, and the helpers they share: `indexed` (an indexed video and its curves),
//! `progress` (the index bar) and `output` (JSON, files).
//!
//! Errors: the engine's are typed; here, at the binary's edge, each command adds what it was
//! doing (`anyhow` context) and `main` prints the whole chain.

mod adapt;
pub mod args;
mod benchmark;
mod cache;
mod check_precision;
mod cuts;
mod dataset;
mod evaluate;
mod excerpt;
mod explain;
mod export;
mod frame;
mod index;
mod indexed;
mod labels;
mod library;
mod moments;
mod output;
mod probe;
mod progress;
mod scores;
mod search;
mod serve;
pub mod settings;

pub use args::{Cli, Command};
pub use settings::resolve;

/// A failed command: what failed, on which file, and why (its chain of causes).
pub type CommandResult = anyhow::Result<()>;

pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        None => serve::run(&cli.serve),
        Some(Command::Serve(args)) => serve::run(&args),
        Some(Command::Probe(args)) => probe::run(&args),
        Some(Command::Frame(args)) => frame::run(&args),
        Some(Command::Index(args)) => index::run(&args),
        Some(Command::Scores(args)) => scores::run(&args),
        Some(Command::Search(args)) => search::run(&args),
        Some(Command::Export(args)) => export::run(&args),
        Some(Command::Moments(args)) => moments::run(&args),
        Some(Command::Benchmark(args)) => benchmark::run(&args),
        Some(Command::Cuts(args)) => cuts::run(&args),
        Some(Command::Clip(args)) => excerpt::run(&args),
        Some(Command::Cache(args)) => cache::run(&args),
        Some(Command::Labels(args)) => labels::run(&args),
        Some(Command::Evaluate(args)) => evaluate::run(&args),
        Some(Command::ExportDataset(args)) => dataset::run(&args),
        Some(Command::Explain(args)) => explain::run(&args),
        Some(Command::CheckPrecision(args)) => check_precision::run(&args),
        Some(Command::Adapt(args)) => adapt::run(&args),
    }
}
