//! The scenarios, one file each. `ALL` is what `--scenario all` runs: only scenarios that
//! measure what their name says are listed.

mod hol;
mod local;
mod rpc;
mod scale;
mod sessions;
mod setup;
mod throughput;

use super::{Ctx, Error, ScenarioResult};

/// Every scenario `all` runs, in order.
pub const ALL: [&str; 7] = [
    "local",
    "throughput",
    "rpc",
    "setup",
    "hol",
    "scale",
    "sessions",
];

/// Runs scenario `name`.
pub async fn run(name: &str, ctx: &Ctx) -> Result<ScenarioResult, Error> {
    match name {
        "local" => local::run(ctx).await,
        "throughput" => throughput::run(ctx).await,
        "rpc" => rpc::run(ctx).await,
        "setup" => setup::run(ctx).await,
        "hol" => hol::run(ctx).await,
        "scale" => scale::run(ctx).await,
        "sessions" => sessions::run(ctx).await,
        other => Err(format!("unknown scenario {other:?}").into()),
    }
}
