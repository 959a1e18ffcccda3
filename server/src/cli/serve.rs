//! `serve` (also the default): the web app. A bad config refuses to start (its intent is
//! unknown), while a bad video starts the server and shows the problem in the page.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engine::library::{model_choices, Library, ModelSlot, SharedModel};

use super::args::ServeArgs;
use super::settings::resolve;
use super::CommandResult;
use crate::web::guard::Guard;

pub fn run(args: &ServeArgs) -> CommandResult {
    let settings = resolve(args)?;
    let models = model_choices(&settings.models)
        .into_iter()
        .zip(&settings.models)
        .map(|(choice, model)| {
            let mut model_settings = settings.clone();
            model_settings.set_model(model.clone());
            ModelSlot {
                choice,
                model: SharedModel::new(move || engine::embed::load(&model_settings)),
            }
        })
        .collect();
    let library = Library::new(&settings, models);
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
