//! `serve` (also the default): the web app. A bad config refuses to start (its intent is
//! unknown), while a bad video starts the server and shows the problem in the page.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engine::library::{model_slots, Library};

use super::args::ServeArgs;
use super::settings::resolve;
use super::CommandResult;
use crate::web::guard::Guard;

pub fn run(args: &ServeArgs) -> CommandResult {
    let settings = resolve(args)?;
    let library = Library::new(&settings, model_slots(&settings));
    library.start_vector_sync();
    library.set_index_library(settings.index_library);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let guard = Guard::new(
        settings.address,
        &settings.allowed_hosts,
        settings.auth_token.clone(),
    );
    let served = runtime.block_on(crate::web::serve(
        Arc::clone(&library),
        settings.prompts.clone(),
        settings.address,
        guard,
    ));
    // Save what is indexed before exiting; each job stops at its next batch.
    for session in library.sessions() {
        for job in session.indexes() {
            job.stop(Duration::from_secs(10));
        }
    }
    Ok(served?)
}
