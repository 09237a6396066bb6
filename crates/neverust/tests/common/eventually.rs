//! The one way tests wait for something a node does in its own time: poll, bounded.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it gives a value and returns it; panics naming `what` once `limit`
/// has passed without one.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_ok(what, limit, || {
        let next = check();
        async move { next.await.ok_or_else(|| "not yet".to_string()) }
    })
    .await
}

/// Like [`eventually`], for a check that says why it is not there yet: the panic gives the
/// last reason.
pub async fn eventually_ok<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(why) => assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}: {why}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a test without a runtime: `check` may block.
pub fn eventually_blocking<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
