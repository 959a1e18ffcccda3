// The page is one deeply nested view type; its layout needs a higher query depth.
#![recursion_limit = "256"]
use clap::Parser;
use server::cli::{run, Cli};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = run(Cli::parse()) {
        // The whole chain, outermost first: what failed, on which file, and why.
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
