//! Polling with a deadline: the only way the suite waits.

use std::future::Future;
use std::time::{Duration, Instant};

/// Pause between two probes. Each probe is a few apiserver reads, so this bounds the load
/// the suite puts on the cluster, not how long any condition is assumed to take.
const POLL: Duration = Duration::from_millis(500);

/// Runs `probe` until it returns `Ok`, or fails after `timeout` with `what` and the reason
/// the last probe gave for "not yet".
pub async fn until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                anyhow::bail!("timed out after {timeout:?} waiting for {what}; last: {e:#}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
