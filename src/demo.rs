//! `wampmesh demo`: a node with live traffic, every step checked.

/// Runs the demo; `Ok(true)` when every step checked out.
pub async fn run() -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    Ok(false)
}
