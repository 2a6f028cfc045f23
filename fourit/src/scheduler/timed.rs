//! The scheduler's coordinator when someone listens to its events: every call forwarded, its
//! round trip timed and reported ([`Event::RoundTrip`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::coordinator::{
    ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, Heartbeat, JobDefinition, Lease,
    ManualOutcome, ManualRequest, MissedNotice, Registrations, RunRecord,
};
use crate::error::Error;
use crate::events::{Event, Events};
use crate::job::{BoxFuture, Overlap};

/// Forwards to `inner`, timing each call.
#[derive(Debug)]
pub(crate) struct Timed {
    pub(crate) inner: Arc<dyn Coordinator>,
    pub(crate) events: Arc<Events>,
}

impl Timed {
    fn time<'a, T: 'a>(
        &'a self,
        operation: &'static str,
        call: impl Future<Output = Result<T, Error>> + Send + 'a,
    ) -> BoxFuture<'a, Result<T, Error>> {
        Box::pin(async move {
            let start = Instant::now();
            let answer = call.await;
            self.events.emit(&Event::RoundTrip {
                operation,
                duration: start.elapsed(),
                ok: answer.is_ok(),
            });
            answer
        })
    }
}

impl Coordinator for Timed {
    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        self.time("claim", self.inner.claim(requests))
    }

    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.time("keep_alive", self.inner.keep_alive(lease, ttl))
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.time("release", self.inner.release(lease, record))
    }

    fn release_all<'a>(
        &'a self,
        runs: &'a [(Lease, RunRecord)],
    ) -> BoxFuture<'a, Vec<Result<bool, Error>>> {
        Box::pin(async move {
            let start = Instant::now();
            let answers = self.inner.release_all(runs).await;
            self.events.emit(&Event::RoundTrip {
                operation: "release",
                duration: start.elapsed(),
                ok: answers.iter().all(Result::is_ok),
            });
            answers
        })
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        self.time(
            "heartbeat",
            self.inner.heartbeat(node, stale_after, clock_offset_us),
        )
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        self.time("server_time", self.inner.server_time())
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.time("leave", self.inner.leave(node))
    }

    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>> {
        self.time("manual", self.inner.manual_requests())
    }

    fn claim_manual<'a>(
        &'a self,
        request: &'a ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<ManualOutcome, Error>> {
        self.time(
            "manual",
            self.inner.claim_manual(request, node, lease_ttl, overlap),
        )
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        self.time("register", self.inner.register(node, jobs))
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
