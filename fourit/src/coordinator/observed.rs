//! The one forwarding layer: a coordinator that forwards every method of the seam to
//! another, showing each call to an observer before it is sent and again when its answer is
//! back. Counting in tests and benchmarks, and the scheduler's round-trip events
//! (`scheduler/timed.rs`), are observers of it; nothing else wraps a coordinator.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{
    ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, Heartbeat, JobDefinition, Lease,
    ManualOutcome, ManualRequest, MissedNotice, Registrations, RunRecord,
};
use crate::error::Error;
use crate::job::{BoxFuture, Overlap};

#[cfg(test)]
mod tests;

/// One call to a coordinator, as an [`Observer`] sees it before it is forwarded and when its
/// answer is back. Every method of [`Coordinator`] that asks the store is one of these; the
/// feeds ([`Coordinator::claim_notices`], [`Coordinator::missed_ticks`]) and
/// [`Coordinator::backend`] are forwarded unobserved.
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
    /// [`Coordinator::manual_requests`]: the manual runs waiting.
    ManualRequests,
    /// [`Coordinator::claim_manual`] of `request`, for `node`.
    ClaimManual {
        /// The manual run asked for.
        request: &'a ManualRequest,
        /// The member taking it.
        node: &'a str,
    },
    /// [`Coordinator::register`] of `jobs`, by `node`.
    Register {
        /// The member registering.
        node: &'a str,
        /// Its jobs' definitions.
        jobs: &'a [JobDefinition],
    },
}

impl Call<'_> {
    /// The call's name as [`Event::RoundTrip`](crate::events::Event::RoundTrip) reports it:
    /// `claim`, `keep_alive`, `release`, `heartbeat`, `server_time`, `leave`, `manual` (the
    /// waiting manual runs, or one taken) or `register`.
    pub fn operation(&self) -> &'static str {
        match self {
            Call::Claim(_) => "claim",
            Call::KeepAlive(_) => "keep_alive",
            Call::Release(_) => "release",
            Call::Heartbeat(_) => "heartbeat",
            Call::ServerTime => "server_time",
            Call::Leave(_) => "leave",
            Call::ManualRequests | Call::ClaimManual { .. } => "manual",
            Call::Register { .. } => "register",
        }
    }
}

/// Sees every call an [`Observed`] coordinator forwards.
pub trait Observer: Send + Sync + std::fmt::Debug + 'static {
    /// Called before `call` is forwarded.
    fn observe(&self, call: Call<'_>);

    /// Called when `call`'s answer is back, `elapsed` after it was sent; `ok` is whether it
    /// succeeded (for a batch of releases: every one of them). An observer that only counts
    /// calls need not implement it: the default does nothing.
    fn answered(&self, call: Call<'_>, elapsed: Duration, ok: bool) {
        let _ = (call, elapsed, ok);
    }
}

/// Forwards every call to `inner`, showing it to `observer` first and again with its
/// answer. Answers are `inner`'s.
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

    /// Shows `call`, sends it (`send`), and shows it again with its answer, which `ok` judges.
    fn forward<'a, T: Send + 'a, F>(
        &'a self,
        call: Call<'a>,
        send: impl FnOnce() -> F,
        ok: fn(&T) -> bool,
    ) -> BoxFuture<'a, T>
    where
        F: Future<Output = T> + Send + 'a,
    {
        self.observer.observe(call);
        let start = Instant::now();
        let answer = send();
        Box::pin(async move {
            let answer = answer.await;
            self.observer.answered(call, start.elapsed(), ok(&answer));
            answer
        })
    }
}

impl Coordinator for Observed {
    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        self.forward(
            Call::Claim(requests),
            || self.inner.claim(requests),
            Result::is_ok,
        )
    }

    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.forward(
            Call::KeepAlive(lease),
            || self.inner.keep_alive(lease, ttl),
            Result::is_ok,
        )
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move {
            let run = [(lease.clone(), record.clone())];
            let call = Call::Release(&run);
            self.observer.observe(call);
            let start = Instant::now();
            let answer = self.inner.release(lease, record).await;
            self.observer
                .answered(call, start.elapsed(), answer.is_ok());
            answer
        })
    }

    fn release_all<'a>(
        &'a self,
        runs: &'a [(Lease, RunRecord)],
    ) -> BoxFuture<'a, Vec<Result<bool, Error>>> {
        self.forward(
            Call::Release(runs),
            || self.inner.release_all(runs),
            |answers| answers.iter().all(Result::is_ok),
        )
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        self.forward(
            Call::Heartbeat(node),
            || self.inner.heartbeat(node, stale_after, clock_offset_us),
            Result::is_ok,
        )
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        self.forward(Call::ServerTime, || self.inner.server_time(), Result::is_ok)
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.forward(Call::Leave(node), || self.inner.leave(node), Result::is_ok)
    }

    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>> {
        self.forward(
            Call::ManualRequests,
            || self.inner.manual_requests(),
            Result::is_ok,
        )
    }

    fn claim_manual<'a>(
        &'a self,
        request: &'a ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<ManualOutcome, Error>> {
        self.forward(
            Call::ClaimManual { request, node },
            || self.inner.claim_manual(request, node, lease_ttl, overlap),
            Result::is_ok,
        )
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        self.forward(
            Call::Register { node, jobs },
            || self.inner.register(node, jobs),
            Result::is_ok,
        )
    }

    fn claim_notices(&self) -> Option<ClaimNotices> {
        self.inner.claim_notices()
    }

    fn missed_ticks(&self) -> Option<tokio::sync::broadcast::Receiver<MissedNotice>> {
        self.inner.missed_ticks()
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}
