//! `wampmesh bench`: measured comparisons.

/// Runs a scenario and writes its results into `out`.
pub async fn run(_scenario: &str, _quick: bool, _out: &std::path::Path) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("not yet".into())
}
