//! `Observed` forwards every method of the seam: a real memory coordinator that logs each
//! method called on it is wrapped, every method is called through the wrapper, and the names
//! the inner one saw are compared with the full list (and with what the observer saw).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use super::{Call, Observed, Observer};
use crate::coordinator::{
    ClaimNotices, ClaimOutcome, ClaimRequest, Coordinator, Heartbeat, JobDefinition, Lease,
    ManualOutcome, ManualRequest, MemoryCoordinator, MissedNotice, Outcome, Registrations,
    RunRecord,
};
use crate::error::Error;
use crate::job::{BoxFuture, FenceToken, Overlap};

/// Every method of [`Coordinator`], by name. `Recording` must implement each of them (none
/// but `release_all` has a default), and logs its name in each.
const EVERY_METHOD: [&str; 13] = [
    "backend",
    "claim",
    "claim_manual",
    "claim_notices",
    "heartbeat",
    "keep_alive",
    "leave",
    "manual_requests",
    "missed_ticks",
    "register",
    "release",
    "release_all",
    "server_time",
];

/// A real memory coordinator that logs the name of every method called on it.
#[derive(Debug, Default)]
struct Recording {
    inner: MemoryCoordinator,
    called: Mutex<BTreeSet<&'static str>>,
}

impl Recording {
    fn log(&self, method: &'static str) {
        if let Ok(mut called) = self.called.lock() {
            called.insert(method);
        }
    }

    fn called(&self) -> BTreeSet<&'static str> {
        self.called.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Coordinator for Recording {
    fn claim<'a>(
        &'a self,
        requests: &'a [ClaimRequest],
    ) -> BoxFuture<'a, Result<Vec<ClaimOutcome>, Error>> {
        self.log("claim");
        self.inner.claim(requests)
    }

    fn keep_alive<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.log("keep_alive");
        self.inner.keep_alive(lease, ttl)
    }

    fn release<'a>(
        &'a self,
        lease: &'a Lease,
        record: &'a RunRecord,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        self.log("release");
        self.inner.release(lease, record)
    }

    fn release_all<'a>(
        &'a self,
        runs: &'a [(Lease, RunRecord)],
    ) -> BoxFuture<'a, Vec<Result<bool, Error>>> {
        self.log("release_all");
        self.inner.release_all(runs)
    }

    fn heartbeat<'a>(
        &'a self,
        node: &'a str,
        stale_after: Duration,
        clock_offset_us: Option<i64>,
    ) -> BoxFuture<'a, Result<Heartbeat, Error>> {
        self.log("heartbeat");
        self.inner.heartbeat(node, stale_after, clock_offset_us)
    }

    fn server_time(&self) -> BoxFuture<'_, Result<Option<i64>, Error>> {
        self.log("server_time");
        self.inner.server_time()
    }

    fn leave<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.log("leave");
        self.inner.leave(node)
    }

    fn manual_requests(&self) -> BoxFuture<'_, Result<Vec<ManualRequest>, Error>> {
        self.log("manual_requests");
        self.inner.manual_requests()
    }

    fn claim_manual<'a>(
        &'a self,
        request: &'a ManualRequest,
        node: &'a str,
        lease_ttl: Duration,
        overlap: Overlap,
    ) -> BoxFuture<'a, Result<ManualOutcome, Error>> {
        self.log("claim_manual");
        self.inner.claim_manual(request, node, lease_ttl, overlap)
    }

    fn register<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        self.log("register");
        self.inner.register(node, jobs)
    }

    fn claim_notices(&self) -> Option<ClaimNotices> {
        self.log("claim_notices");
        self.inner.claim_notices()
    }

    fn missed_ticks(&self) -> Option<tokio::sync::broadcast::Receiver<MissedNotice>> {
        self.log("missed_ticks");
        self.inner.missed_ticks()
    }

    fn backend(&self) -> &'static str {
        self.log("backend");
        "recording"
    }
}

/// The calls an observer saw, before and after their answers, by operation.
#[derive(Debug, Default)]
struct Seen {
    observed: Mutex<Vec<&'static str>>,
    answered: Mutex<Vec<&'static str>>,
}

impl Observer for Seen {
    fn observe(&self, call: Call<'_>) {
        if let Ok(mut seen) = self.observed.lock() {
            seen.push(call.operation());
        }
    }

    fn answered(&self, call: Call<'_>, _elapsed: Duration, _ok: bool) {
        if let Ok(mut seen) = self.answered.lock() {
            seen.push(call.operation());
        }
    }
}

/// What every call is made with (the answers do not matter here, only who got the call).
struct Fixtures {
    requests: Vec<ClaimRequest>,
    runs: Vec<(Lease, RunRecord)>,
    manual: ManualRequest,
    jobs: Vec<JobDefinition>,
}

impl Fixtures {
    fn new() -> Fixtures {
        let lease = Lease {
            job: Arc::from("job"),
            tick_ms: 1_000,
            fence: FenceToken(1),
            node: Arc::from("node"),
            overlap: Overlap::Skip,
            manual: false,
        };
        let record = RunRecord {
            outcome: Outcome::Succeeded,
            started: Utc::now(),
            duration: Duration::ZERO,
        };
        Fixtures {
            requests: vec![ClaimRequest {
                job: Arc::from("job"),
                tick_ms: 1_000,
                node: Arc::from("node"),
                lease_ttl: Duration::from_secs(5),
                overlap: Overlap::Skip,
                preferred: None,
                handoff: Duration::ZERO,
                claim_id: crate::coordinator::new_claim_id(),
                schedule: None,
            }],
            runs: vec![(lease, record)],
            manual: ManualRequest {
                job: "job".to_string(),
                id: "1".to_string(),
                by: "test".to_string(),
                requested_ms: 1_000,
                force: false,
            },
            jobs: vec![JobDefinition {
                name: "job".to_string(),
                schedule: "* * * * * *".to_string(),
                timezone: "UTC".to_string(),
                overlap: Overlap::Skip,
                timeout: None,
                grace: None,
                location: "here:1".to_string(),
                version: None,
            }],
        }
    }

    /// One call of every kind.
    fn calls(&self) -> Vec<Call<'_>> {
        vec![
            Call::Claim(&self.requests),
            Call::KeepAlive(&self.runs[0].0),
            Call::Release(&self.runs),
            Call::Heartbeat("node"),
            Call::ServerTime,
            Call::Leave("node"),
            Call::ManualRequests,
            Call::ClaimManual {
                request: &self.manual,
                node: "node",
            },
            Call::Register {
                node: "node",
                jobs: &self.jobs,
            },
        ]
    }
}

/// Calls every method of `coordinator`: each kind of [`Call`] through the method(s) it
/// stands for (an exhaustive match: a new kind of call does not compile until it is made
/// here), then the methods that are not calls to the store.
async fn call_every_method(coordinator: &dyn Coordinator, fixtures: &Fixtures) {
    for call in fixtures.calls() {
        match call {
            Call::Claim(requests) => drop(coordinator.claim(requests).await),
            Call::KeepAlive(lease) => {
                drop(coordinator.keep_alive(lease, Duration::from_secs(5)).await);
            }
            Call::Release(runs) => {
                for (lease, record) in runs {
                    drop(coordinator.release(lease, record).await);
                }
                drop(coordinator.release_all(runs).await);
            }
            Call::Heartbeat(node) => {
                drop(
                    coordinator
                        .heartbeat(node, Duration::from_secs(5), None)
                        .await,
                );
            }
            Call::ServerTime => drop(coordinator.server_time().await),
            Call::Leave(node) => drop(coordinator.leave(node).await),
            Call::ManualRequests => drop(coordinator.manual_requests().await),
            Call::ClaimManual { request, node } => {
                let ttl = Duration::from_secs(5);
                drop(
                    coordinator
                        .claim_manual(request, node, ttl, Overlap::Skip)
                        .await,
                );
            }
            Call::Register { node, jobs } => drop(coordinator.register(node, jobs).await),
        }
    }
    drop(coordinator.claim_notices());
    drop(coordinator.missed_ticks());
    let _ = coordinator.backend();
}

#[tokio::test]
async fn the_driver_calls_every_method_of_the_seam() {
    let direct = Recording::default();
    call_every_method(&direct, &Fixtures::new()).await;
    let every: BTreeSet<&str> = EVERY_METHOD.into_iter().collect();
    assert_eq!(direct.called(), every, "the test itself misses a method");
}

#[tokio::test]
async fn observed_forwards_every_method_and_shows_every_call() {
    let inner = Arc::new(Recording::default());
    let seen = Arc::new(Seen::default());
    let wrapped = Observed::new(inner.clone(), seen.clone());
    let fixtures = Fixtures::new();
    call_every_method(&wrapped, &fixtures).await;

    let every: BTreeSet<&str> = EVERY_METHOD.into_iter().collect();
    let called = inner.called();
    let missing: Vec<&&str> = every.difference(&called).collect();
    assert!(missing.is_empty(), "Observed does not forward {missing:?}");
    assert_eq!(
        wrapped.backend(),
        "recording",
        "the answer is the inner one's"
    );
    assert!(
        wrapped.claim_notices().is_some() && wrapped.missed_ticks().is_some(),
        "the inner one's feeds are handed on"
    );

    // Each call was shown before it was sent and again with its answer (a release and a
    // batch of releases are one kind of call each time).
    let shown: Vec<&str> = fixtures
        .calls()
        .iter()
        .flat_map(|call| match call {
            Call::Release(_) => vec![call.operation(), call.operation()],
            _ => vec![call.operation()],
        })
        .collect();
    let observed = seen.observed.lock().map(|s| s.clone()).unwrap_or_default();
    let answered = seen.answered.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(observed, shown, "every call shown before it is sent");
    assert_eq!(answered, shown, "every call shown with its answer");
}
