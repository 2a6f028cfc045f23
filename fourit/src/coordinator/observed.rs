//! A coordinator that forwards every call to another and shows each call to an observer on
//! the way: written once, for counting in tests and benchmarks (and metrics later).

use std::sync::Arc;
use std::time::Duration;

use super::{ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, Heartbeat, Lease, RunRecord};
use crate::error::Error;
use crate::job::BoxFuture;

/// One call to a coordinator, as an [`Observer`] sees it before it is forwarded.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Call<'a> {
    /// [`Coordinator::claim`]: one round trip for all of these.
    Claim(&'a [ClaimRequest]),
    /// [`Coordinator::keep_alive`].
    KeepAlive(&'a Lease),
    /// [`Coordinator::release`] (one run) or [`Coordinator::release_all`] (several): one round
    /// trip.
    Release(&'a [(Lease, RunRecord)]),
    /// [`Coordinator::heartbeat`] of this node.
    Heartbeat(&'a str),
    /// [`Coordinator::server_time`].
    ServerTime,
    /// [`Coordinator::leave`] of this node.
    Leave(&'a str),
}

/// Sees every call an [`Observed`] coordinator forwards.
pub trait Observer: Send + Sync + std::fmt::Debug + 'static {
    /// Called before `call` is forwarded.
    fn observe(&self, call: Call<'_>);
}

/// Forwards every call to `inner`, showing it to `observer` first. Answers are `inner`'s.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use fourit::coordinator::{Call, MemoryCoordinator, Observed, Observer};
///
/// #[derive(Debug, Default)]
/// struct ClaimCount(AtomicUsize);
///
/// impl Observer for ClaimCount {
///     fn observe(&self, call: Call<'_>) {
///         if let Call::Claim(requests) = call {
///             self.0.fetch_add(requests.len(), Ordering::Relaxed);
///         }
///     }
/// }
///
/// let count = Arc::new(ClaimCount::default());
/// let coordinator = Observed::new(Arc::new(MemoryCoordinator::new()), count.clone());
/// # let _ = coordinator;
/// ```
#[derive(Debug)]
pub struct Observed {
    inner: Arc<dyn Coordinator>,
    observer: Arc<dyn Observer>,
}

impl Observed {
    /// `inner`, with every call shown to `observer`.
    pub fn new(inner: Arc<dyn Coordinator>, observer: Arc<dyn Observer>) -> Observed {
        Observed { inner, observer }
    }
}

impl Coordinator for Observed {
    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        self.observer.observe(Call::Claim(requests));
        self.inner.claim(requests)
    }

    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.observer.observe(Call::KeepAlive(lease));
        self.inner.keep_alive(lease, ttl)
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let run = [(lease.clone(), record.clone())];
            self.observer.observe(Call::Release(&run));
            self.inner.release(lease, record).await
        })
    }

    fn release_all<'a>(
        &'a self,
        runs: &'a [(Lease, RunRecord)],
    ) -> BoxFuture<'a, Vec<Result<bool, Error>>> {
        self.observer.observe(Call::Release(runs));
        self.inner.release_all(runs)
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        self.observer.observe(Call::Heartbeat(node));
        self.inner.heartbeat(node, stale_after, clock_offset_us)
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        self.observer.observe(Call::ServerTime);
        self.inner.server_time()
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.observer.observe(Call::Leave(node));
        self.inner.leave(node)
    }

    fn claim_notices(&self) -> Option<ClaimNotices> {
        self.inner.claim_notices()
    }

    fn missed_ticks(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::coordinator::MissedNotice>> {
        self.inner.missed_ticks()
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}
