//! Making a fresh connection while the old one is unusable: attempts every half second,
//! overlapping, so an attempt that hangs on a link that was dead when it started does not
//! hold back the one that finds the link healed.

use std::future::Future;
use std::time::Duration;

use redis::RedisError;
use tokio::task::JoinSet;
use tracing::debug;

use super::DEADLINE;

/// How often a new attempt starts while none has succeeded.
pub(super) const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// Runs `attempt` every [`RECONNECT_EVERY`] (each within the call deadline, several at once)
/// until one succeeds, and answers it; `None` once `wanted` says no one needs it any more.
/// Each attempt refused (not one that timed out) is told to `failed`. The attempts still
/// running are dropped with the answer.
pub(super) async fn until_connected<T, Fut>(
    mut attempt: impl FnMut() -> Fut,
    wanted: impl Fn() -> bool,
    failed: impl Fn(&RedisError),
) -> Option<T>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T, RedisError>> + Send + 'static,
{
    let mut attempts = JoinSet::new();
    let mut next = tokio::time::interval(RECONNECT_EVERY);
    next.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = next.tick() => {
                if !wanted() {
                    return None;
                }
                attempts.spawn(tokio::time::timeout(DEADLINE, attempt()));
            }
            Some(done) = attempts.join_next() => match done {
                Ok(Ok(Ok(connected))) => return Some(connected),
                // Still refused or unreachable: the next attempt is on its way.
                Ok(Ok(Err(err))) => {
                    debug!(error = err.category(), "reconnecting failed");
                    failed(&err);
                }
                Ok(Err(_)) => debug!("reconnecting timed out"),
                Err(_) => {}
            },
        }
    }
}
