//! The conformance suite: every `Coordinator` backend keeps the same promises.
//!
//! Each case is written once, in [`cases`], as an async fn taking the coordinator as an
//! `Arc<dyn Store>`. The [`conformance!`] macro instantiates every case for the memory
//! backend (`memory::<case>`), for Redis (`redis::<case>`, each test against a
//! `redis-server` of its own) and for Redis Cluster (`cluster::<case>`, each against a
//! cluster of its own: three primaries, a replica each, claims waiting for the replica). Cases that only make sense for Redis (outages, key layout,
//! namespaces) are in [`redis_cases`] and run as `redis::<case>`; cases only a SQL server has
//! (a new database migrated by several at once, a connection cut mid-claim) are in
//! [`postgres_only`].

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fourit::coordinator::{
    ClaimOutcome, ClaimRequest, FUTURE_TICK_TOLERANCE, HISTORY_LEN, HistoryEntry, Lease, Member,
    MemoryCoordinator, Outcome, RedisCoordinator, RunRecord, Store,
};
use fourit::{FenceToken, Overlap};
use fourit_tests::{RedisCluster, RedisServer, init_tracing};
use tokio::time::Instant;

/// No case may take longer than this: a hang fails the test instead of stalling the suite.
const CASE_DEADLINE: Duration = Duration::from_secs(60);
/// The lease TTL of claims whose lease should not expire during a case.
const LONG_LEASE: Duration = Duration::from_secs(30);
/// The namespace of the Redis backend under test.
const NAMESPACE: &str = "conformance";
/// A realistic first tick: 2026-01-01T00:00:00Z in UTC milliseconds.
const T0: i64 = 1_767_225_600_000;

/// A backend under test. Keeps its Redis server or cluster (if any) alive as long as the
/// coordinator.
struct Backend {
    coordinator: Arc<dyn Store>,
    _server: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
    _file: Option<Scratch>,
}

/// A SQLite file of one case, deleted (with its WAL files) afterwards.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Scratch(std::env::temp_dir().join(format!(
            "fourit-conformance-{}-{n}-{}.db",
            std::process::id(),
            Utc::now().timestamp_micros()
        )))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

impl Backend {
    fn memory() -> Backend {
        init_tracing();
        Backend {
            coordinator: Arc::new(MemoryCoordinator::new()),
            _server: None,
            _cluster: None,
            _file: None,
        }
    }

    /// A SQLite file of its own.
    async fn sqlite() -> Backend {
        init_tracing();
        let file = Scratch::new();
        let url = format!("sqlite://{}", file.0.display());
        let coordinator = fourit::coordinator::SqliteCoordinator::connect(&url, NAMESPACE)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
        Backend {
            coordinator: Arc::new(coordinator),
            _server: None,
            _cluster: None,
            _file: Some(file),
        }
    }

    /// The test PostgreSQL (`fourit_tests::postgres_url`: this binary's shared throwaway
    /// server, or `FOURIT_TEST_POSTGRES_URL`), under a namespace of this case's own.
    async fn postgres() -> Backend {
        init_tracing();
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let namespace = format!(
            "conformance-{}-{}-{n}",
            std::process::id(),
            Utc::now().timestamp_micros()
        );
        let url = fourit_tests::postgres_url();
        let coordinator = fourit::coordinator::PostgresCoordinator::connect(&url, &namespace)
            .await
            .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL {url}: {e}"));
        Backend {
            coordinator: Arc::new(coordinator),
            _server: None,
            _cluster: None,
            _file: None,
        }
    }

    async fn redis() -> Backend {
        init_tracing();
        let server = RedisServer::start();
        let coordinator = connect(&server, NAMESPACE).await;
        Backend {
            coordinator,
            _server: Some(server),
            _cluster: None,
            _file: None,
        }
    }

    /// A Redis Cluster of three primaries with a replica each, every claim waiting for its
    /// replica's acknowledgement (`WAIT` in each slot's pipeline): the protocol must hold
    /// unchanged with replica acks on (the failover tests are in `tests/cluster.rs`).
    async fn cluster() -> Backend {
        init_tracing();
        let cluster = RedisCluster::start(3, 1);
        let options =
            fourit::coordinator::ConnectOptions::new().wait_for_replicas(1, Duration::from_secs(1));
        let coordinator =
            RedisCoordinator::connect_with_options(&cluster.url(), NAMESPACE, &options)
                .await
                .unwrap_or_else(|e| {
                    panic!("connecting to the test cluster {}: {e}", cluster.url())
                });
        Backend {
            coordinator: Arc::new(coordinator),
            _server: None,
            _cluster: Some(cluster),
            _file: None,
        }
    }
}

/// A Redis coordinator on `server`, under `namespace`.
async fn connect(server: &RedisServer, namespace: &str) -> Arc<dyn Store> {
    let coordinator = RedisCoordinator::connect(&server.url(), namespace)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test Redis at {}: {e}", server.url()));
    Arc::new(coordinator)
}

/// Runs a case under [`CASE_DEADLINE`].
async fn bounded<F: Future<Output = ()>>(case: F) {
    tokio::time::timeout(CASE_DEADLINE, case)
        .await
        .unwrap_or_else(|_| panic!("the case did not finish within {CASE_DEADLINE:?}"));
}

/// Instantiates each shared case for both backends, and each Redis-only case for Redis.
macro_rules! conformance {
    (
        cases: [$($case:ident),+ $(,)?],
        redis_only: [$($redis_case:ident),+ $(,)?] $(,)?
    ) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::memory();
                    super::bounded(super::cases::$case(backend.coordinator.clone())).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::postgres().await;
                    super::bounded(super::cases::$case(backend.coordinator.clone())).await;
                }
            )+
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::sqlite().await;
                    super::bounded(super::cases::$case(backend.coordinator.clone())).await;
                }
            )+
        }

        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::cluster().await;
                    super::bounded(super::cases::$case(backend.coordinator.clone())).await;
                }
            )+
        }

        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::redis().await;
                    super::bounded(super::cases::$case(backend.coordinator.clone())).await;
                }
            )+
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $redis_case() {
                    super::init_tracing();
                    super::bounded(super::redis_cases::$redis_case()).await;
                }
            )+
        }
    };
}

conformance! {
    cases: [
        every_jobs_history_is_read_at_once,
        a_tick_is_claimed_once_among_concurrent_claimers,
        a_late_or_repeated_claim_of_a_tick_is_refused,
        overlap_skip_reports_the_holder_and_records_the_overlap,
        overlap_allow_gives_each_run_its_own_lease,
        registrations_follow_the_members_and_an_orphan_keeps_its_last,
        only_the_owner_extends_or_releases_a_lease,
        an_expired_lease_frees_the_job,
        keep_alive_extends_the_lease,
        fence_tokens_increase_across_runs_and_nodes_and_are_independent_per_job,
        history_is_newest_first_capped_and_complete,
        history_keeps_error_text_verbatim,
        heartbeat_adds_a_member_and_leave_removes_it,
        members_carry_the_clock_offset_their_heartbeat_gave,
        a_heartbeat_answers_the_live_members_and_forgets_silent_ones,
        the_preferred_claimer_is_admitted_at_once,
        others_are_refused_until_the_handoff_window_closes,
        anyone_is_admitted_after_the_handoff_window,
        a_refused_early_claim_records_nothing,
        a_batch_claim_answers_each_request_in_order,
        decided_ticks_are_announced_and_nothing_else,
        a_batch_release_answers_each_run_in_order,
        a_tick_in_the_coordinators_future_is_refused_and_records_nothing,
        a_tick_within_the_tolerance_of_the_coordinators_clock_is_admitted,
        a_future_tick_in_a_batch_does_not_hold_back_the_others,
        a_claim_sent_again_after_a_lost_answer_resumes_the_same_run,
        a_release_sent_again_after_a_lost_answer_is_recorded_once,
        a_paused_job_decides_its_ticks_as_paused_until_resumed,
        ticks_nobody_decided_are_recorded_as_missed_by_the_claim_that_skips_them,
        the_catalog_holds_each_members_definition_and_the_jobs_state_until_removed,
        a_manual_run_is_taken_once_and_never_moves_the_mark,
    ],
    redis_only: [
        an_unreachable_redis_yields_an_error_not_a_claim,
        connecting_to_an_unreachable_redis_is_an_error,
        claims_survive_a_restart_with_appendonly,
        a_jobs_keys_share_its_hash_tag,
        namespaces_on_one_server_do_not_see_each_other,
        membership_changes_reach_every_member_and_a_steady_heartbeat_carries_no_list,
        a_pause_lives_in_redis_and_every_coordinator_obeys_it,
    ],
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// How long a member counts as alive after its heartbeat, in these tests.
const MEMBER_TTL: Duration = Duration::from_secs(60);

/// A claim of `tick_ms` by `node` while `preferred` has the tick for `handoff`.
fn request_handoff(
    job: &str,
    tick_ms: i64,
    node: &str,
    preferred: &str,
    handoff: Duration,
) -> ClaimRequest {
    ClaimRequest {
        preferred: Some(Arc::from(preferred)),
        handoff,
        ..request(job, tick_ms, node)
    }
}

/// The `n`th tick of a once-a-minute schedule.
fn tick(n: i64) -> i64 {
    T0 + n * 60_000
}

/// A claim with a long lease and the default overlap policy (skip).
fn request(job: &str, tick_ms: i64, node: &str) -> ClaimRequest {
    ClaimRequest {
        job: Arc::from(job),
        tick_ms,
        node: Arc::from(node),
        lease_ttl: LONG_LEASE,
        overlap: Overlap::Skip,
        preferred: None,
        handoff: Duration::ZERO,
        claim_id: fourit::coordinator::new_claim_id(),
        schedule: None,
    }
}

/// A claim that carries the job's schedule (every minute, as [`tick`] counts).
fn request_scheduled(job: &str, tick_ms: i64, node: &str) -> ClaimRequest {
    ClaimRequest {
        schedule: Some(Arc::new(
            fourit::Schedule::parse("* * * * *").expect("a valid schedule"),
        )),
        ..request(job, tick_ms, node)
    }
}

/// A claim whose run may overlap the previous one.
fn request_allow(job: &str, tick_ms: i64, node: &str) -> ClaimRequest {
    ClaimRequest {
        overlap: Overlap::Allow,
        ..request(job, tick_ms, node)
    }
}

/// Claims one tick; the call itself must succeed and answer once.
async fn claim(c: &dyn Store, request: ClaimRequest) -> ClaimOutcome {
    let mut outcomes = c
        .claim(std::slice::from_ref(&request))
        .await
        .unwrap_or_else(|e| panic!("claim of {request:?} failed: {e}"));
    assert_eq!(outcomes.len(), 1, "one answer per request: {outcomes:?}");
    outcomes.pop().unwrap()
}

/// The lease of a claim that must run.
#[track_caller]
fn expect_run(outcome: ClaimOutcome, what: &str) -> Lease {
    match outcome {
        ClaimOutcome::Run(lease) => lease,
        other => panic!("{what}: expected Run, got {other:?}"),
    }
}

/// The holder named by a claim that must be refused as an overlap.
#[track_caller]
fn expect_overlap(outcome: ClaimOutcome, what: &str) -> String {
    match outcome {
        ClaimOutcome::Overlap { holder } => holder,
        other => panic!("{what}: expected Overlap, got {other:?}"),
    }
}

fn record(outcome: Outcome, duration_ms: u64) -> RunRecord {
    RunRecord {
        outcome,
        started: Utc::now(),
        duration: Duration::from_millis(duration_ms),
    }
}

async fn keep_alive(c: &dyn Store, lease: &Lease, ttl: Duration) -> bool {
    c.keep_alive(lease, ttl)
        .await
        .unwrap_or_else(|e| panic!("keep_alive of {lease:?} failed: {e}"))
}

async fn release(c: &dyn Store, lease: &Lease, record: &RunRecord) -> bool {
    c.release(lease, record)
        .await
        .unwrap_or_else(|e| panic!("release of {lease:?} failed: {e}"))
}

async fn history(c: &dyn Store, job: &str, limit: usize) -> Vec<HistoryEntry> {
    c.history(job, limit)
        .await
        .unwrap_or_else(|e| panic!("history of {job} failed: {e}"))
}

async fn members(c: &dyn Store) -> Vec<(String, i64)> {
    c.members()
        .await
        .unwrap_or_else(|e| panic!("members failed: {e}"))
        .into_iter()
        .map(|member| (member.node, member.heartbeat_ms))
        .collect()
}

/// The history entry a release of `lease` with `record` writes.
fn finished(lease: &Lease, record: &RunRecord) -> HistoryEntry {
    HistoryEntry {
        tick_ms: lease.tick_ms,
        node: lease.node.to_string(),
        outcome: record.outcome.as_str().to_string(),
        detail: record.outcome.error().map(str::to_string),
        fence: Some(lease.fence.get()),
        duration_ms: Some(record.duration.as_millis() as u64),
        delay_ms: Some(record.delay_ms(lease.tick_ms)),
    }
}

/// The history entry of a tick skipped as an overlap.
fn overlapped(tick_ms: i64, node: &str, holder: &str) -> HistoryEntry {
    HistoryEntry {
        tick_ms,
        node: node.to_string(),
        outcome: "overlap".to_string(),
        detail: Some(holder.to_string()),
        fence: None,
        duration_ms: None,
        delay_ms: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The cases every backend passes

mod cases {
    use super::*;

    /// 16 tasks, each its own node, race for the same tick: exactly one runs it.
    pub async fn a_tick_is_claimed_once_among_concurrent_claimers(c: Arc<dyn Store>) {
        const CLAIMERS: usize = 16;
        let mut last_fence = None;
        for n in 0..8 {
            let barrier = Arc::new(tokio::sync::Barrier::new(CLAIMERS));
            let mut racers = tokio::task::JoinSet::new();
            for i in 0..CLAIMERS {
                let (c, barrier) = (c.clone(), barrier.clone());
                racers.spawn(async move {
                    let node = format!("node-{i}");
                    barrier.wait().await;
                    let outcome = claim(&*c, request("race", tick(n), &node)).await;
                    (node, outcome)
                });
            }
            let mut winners = Vec::new();
            let mut taken = 0;
            while let Some(joined) = racers.join_next().await {
                match joined.expect("a claimer panicked") {
                    (node, ClaimOutcome::Run(lease)) => winners.push((node, lease)),
                    (_, ClaimOutcome::Taken) => taken += 1,
                    (node, other) => panic!("tick {n}: {node} got {other:?}, expected Taken"),
                }
            }
            assert_eq!(winners.len(), 1, "tick {n}: winners {winners:?}");
            assert_eq!(taken, CLAIMERS - 1, "tick {n}");
            let (node, lease) = winners.pop().unwrap();
            assert_eq!(&*lease.job, "race");
            assert_eq!(lease.tick_ms, tick(n));
            assert_eq!(&*lease.node, node);
            assert_eq!(lease.overlap, Overlap::Skip);
            assert!(last_fence < Some(lease.fence), "fences increase");
            last_fence = Some(lease.fence);
            assert!(release(&*c, &lease, &record(Outcome::Succeeded, 1)).await);
        }
    }

    /// The high-water mark: a tick at or below the highest claimed one is refused, to
    /// everyone, whatever the overlap policy.
    pub async fn a_late_or_repeated_claim_of_a_tick_is_refused(c: Arc<dyn Store>) {
        let c = &*c;
        let lease = expect_run(
            claim(c, request("late", 2000, "node-a")).await,
            "first claim",
        );
        assert_eq!(
            claim(c, request("late", 1000, "node-b")).await,
            ClaimOutcome::Taken
        );
        assert_eq!(
            claim(c, request("late", 2000, "node-b")).await,
            ClaimOutcome::Taken
        );
        // A new claim from the winner's node id (a restarted process) is refused too: only
        // the very claim sent again resumes (`a_claim_sent_again_...`).
        assert_eq!(
            claim(c, request("late", 2000, "node-a")).await,
            ClaimOutcome::Taken
        );
        assert!(release(c, &lease, &record(Outcome::Succeeded, 1)).await);
        // Still refused once the run is over: the mark is not the lease.
        assert_eq!(
            claim(c, request("late", 1000, "node-b")).await,
            ClaimOutcome::Taken
        );
        assert_eq!(
            claim(c, request("late", 1999, "node-b")).await,
            ClaimOutcome::Taken
        );
        assert_eq!(
            claim(c, request("late", 2000, "node-b")).await,
            ClaimOutcome::Taken
        );
        let next = expect_run(
            claim(c, request("late", 2001, "node-b")).await,
            "later tick",
        );
        assert!(next.fence > lease.fence);

        // Overlap allowed changes nothing about the mark.
        expect_run(
            claim(c, request_allow("late-allow", 5000, "node-a")).await,
            "allow",
        );
        for (tick_ms, node) in [(5000, "node-a"), (5000, "node-b"), (4000, "node-b")] {
            assert_eq!(
                claim(c, request_allow("late-allow", tick_ms, node)).await,
                ClaimOutcome::Taken,
                "tick {tick_ms} by {node}"
            );
        }
    }

    /// While run A holds its lease, the next tick (overlap forbidden) is skipped, naming A,
    /// and recorded; once A releases, the tick after runs.
    pub async fn overlap_skip_reports_the_holder_and_records_the_overlap(c: Arc<dyn Store>) {
        let c = &*c;
        let a = expect_run(claim(c, request("skip", tick(0), "node-a")).await, "run A");
        let holder = expect_overlap(claim(c, request("skip", tick(1), "node-b")).await, "tick 1");
        assert_eq!(holder, a.run_id());
        assert_eq!(
            history(c, "skip", 10).await,
            vec![overlapped(tick(1), "node-b", &a.run_id())]
        );

        let done = record(Outcome::Succeeded, 5);
        assert!(release(c, &a, &done).await);
        // The skipped tick was claimed: it is not run late.
        assert_eq!(
            claim(c, request("skip", tick(1), "node-c")).await,
            ClaimOutcome::Taken
        );
        let b = expect_run(claim(c, request("skip", tick(2), "node-b")).await, "tick 2");
        assert!(b.fence > a.fence);
        assert_eq!(b.run_id(), format!("node-b:{}:{}", b.fence, tick(2)));
        assert_eq!(
            history(c, "skip", 10).await,
            vec![
                finished(&a, &done),
                overlapped(tick(1), "node-b", &a.run_id())
            ]
        );
    }

    /// With overlap allowed, consecutive ticks both run, each under a lease of its own.
    pub async fn overlap_allow_gives_each_run_its_own_lease(c: Arc<dyn Store>) {
        let c = &*c;
        let ttl = Duration::from_secs(30);
        let a = expect_run(
            claim(c, request_allow("allow", tick(0), "node-a")).await,
            "A",
        );
        let b = expect_run(
            claim(c, request_allow("allow", tick(1), "node-b")).await,
            "B",
        );
        assert_eq!(a.overlap, Overlap::Allow);
        assert_eq!(b.overlap, Overlap::Allow);
        assert_ne!(a.fence, b.fence);
        assert_ne!(a.run_id(), b.run_id());

        assert!(keep_alive(c, &a, ttl).await);
        assert!(keep_alive(c, &b, ttl).await);
        assert!(release(c, &a, &record(Outcome::Succeeded, 1)).await);
        // B's lease is untouched by A's release; A's is gone.
        assert!(keep_alive(c, &b, ttl).await);
        assert!(!keep_alive(c, &a, ttl).await);
        assert!(!release(c, &a, &record(Outcome::Succeeded, 1)).await);
        // A third run while B still runs.
        let third = expect_run(
            claim(c, request_allow("allow", tick(2), "node-a")).await,
            "3rd",
        );
        assert!(release(c, &b, &record(Outcome::Succeeded, 1)).await);
        assert!(keep_alive(c, &third, ttl).await);
        assert!(release(c, &third, &record(Outcome::Succeeded, 1)).await);
    }

    /// A lease that is not the holder's own (other node, other fence, other job) can neither
    /// extend nor release the real one.
    pub async fn only_the_owner_extends_or_releases_a_lease(c: Arc<dyn Store>) {
        let c = &*c;
        let ttl = Duration::from_secs(30);
        let real = expect_run(claim(c, request("owned", tick(0), "node-a")).await, "owner");
        let forgeries = [
            Lease {
                node: Arc::from("node-b"),
                ..real.clone()
            },
            Lease {
                fence: FenceToken(real.fence.get() + 1),
                ..real.clone()
            },
            Lease {
                fence: FenceToken(real.fence.get() + 1000),
                node: Arc::from("node-b"),
                ..real.clone()
            },
            Lease {
                job: Arc::from("not-owned"),
                ..real.clone()
            },
        ];
        for forged in &forgeries {
            assert!(
                !keep_alive(c, forged, ttl).await,
                "keep_alive of {forged:?}"
            );
            assert!(
                !release(c, forged, &record(Outcome::Succeeded, 1)).await,
                "release of {forged:?}"
            );
        }
        // The real lease survived all of it.
        assert!(keep_alive(c, &real, ttl).await);
        let holder = expect_overlap(claim(c, request("owned", tick(1), "node-c")).await, "next");
        assert_eq!(holder, real.run_id());
        assert!(release(c, &real, &record(Outcome::Succeeded, 1)).await);
        assert!(!keep_alive(c, &real, ttl).await, "a released lease is gone");
    }

    /// A lease that is not kept alive expires: the job runs again, and the old owner learns
    /// it lost the lease (its outcome is still recorded).
    pub async fn an_expired_lease_frees_the_job(c: Arc<dyn Store>) {
        let c = &*c;
        let ttl = Duration::from_millis(300);
        let claimed_at = Instant::now();
        let owner = expect_run(
            claim(
                c,
                ClaimRequest {
                    lease_ttl: ttl,
                    ..request("expiring", tick(0), "node-a")
                },
            )
            .await,
            "owner",
        );
        let holder = expect_overlap(
            claim(c, request("expiring", tick(1), "node-b")).await,
            "right after the claim",
        );
        assert_eq!(holder, owner.run_id());

        // Each poll claims a later tick, until one runs.
        let deadline = claimed_at + Duration::from_secs(10);
        let mut n = 2;
        let successor = loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match claim(c, request("expiring", tick(n), "node-b")).await {
                ClaimOutcome::Run(lease) => break lease,
                ClaimOutcome::Overlap { holder } => assert_eq!(holder, owner.run_id()),
                other => panic!("tick {n} was never claimed before, yet: {other:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "a {ttl:?} lease still held the job after 10 s"
            );
            n += 1;
        };
        let held_for = claimed_at.elapsed();
        assert!(
            held_for >= ttl - Duration::from_millis(50),
            "the lease expired after {held_for:?}, before its TTL of {ttl:?}"
        );

        assert!(
            !keep_alive(c, &owner, ttl).await,
            "the old owner's lease is gone"
        );
        let late = record(Outcome::Succeeded, 400);
        assert!(
            !release(c, &owner, &late).await,
            "the old owner no longer holds it"
        );
        assert!(
            keep_alive(c, &successor, LONG_LEASE).await,
            "the new run's lease holds"
        );
        let recorded = history(c, "expiring", HISTORY_LEN).await;
        assert_eq!(
            recorded.first(),
            Some(&finished(&owner, &late)),
            "{recorded:#?}"
        );
    }

    /// Keeping a 400 ms lease alive every 100 ms holds the job for 1.5 s.
    pub async fn keep_alive_extends_the_lease(c: Arc<dyn Store>) {
        let c = &*c;
        let ttl = Duration::from_millis(400);
        let lease = expect_run(
            claim(
                c,
                ClaimRequest {
                    lease_ttl: ttl,
                    ..request("kept", tick(0), "node-a")
                },
            )
            .await,
            "owner",
        );
        let until = Instant::now() + Duration::from_millis(1500);
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 1;
        while Instant::now() < until {
            interval.tick().await;
            assert!(keep_alive(c, &lease, ttl).await, "keep-alive {n}");
            let holder = expect_overlap(
                claim(c, request("kept", tick(n), "node-b")).await,
                &format!("competing claim {n}"),
            );
            assert_eq!(holder, lease.run_id());
            n += 1;
        }
        assert!(n > 10, "only {n} keep-alives in 1.5 s");
        assert!(release(c, &lease, &record(Outcome::Succeeded, 1500)).await);
        expect_run(
            claim(c, request("kept", tick(n), "node-b")).await,
            "after release",
        );
    }

    /// Fences strictly increase across the runs of a job, whichever node runs them, and a
    /// job's fences do not depend on other jobs' runs.
    pub async fn fence_tokens_increase_across_runs_and_nodes_and_are_independent_per_job(
        c: Arc<dyn Store>,
    ) {
        let c = &*c;
        let mut fences = Vec::new();
        for n in 0..12 {
            let node = format!("node-{}", n % 4);
            let lease = expect_run(claim(c, request("fenced", tick(n), &node)).await, "run");
            fences.push(lease.fence);
            assert!(release(c, &lease, &record(Outcome::Succeeded, 1)).await);
        }
        // Concurrent runs (overlap allowed) too.
        for n in 12..15 {
            let node = format!("node-{}", n % 4);
            let lease = expect_run(
                claim(c, request_allow("fenced", tick(n), &node)).await,
                "run",
            );
            fences.push(lease.fence);
        }
        assert!(
            fences.windows(2).all(|pair| pair[0] < pair[1]),
            "fences must strictly increase: {fences:?}"
        );

        // A fresh job starts where the first one started, however many runs that one had.
        let fresh = expect_run(claim(c, request("fresh", tick(0), "node-0")).await, "fresh");
        assert_eq!(fresh.fence, fences[0], "fences are counted per job");
        // Both jobs in one batch: each continues its own sequence.
        let outcomes = c
            .claim(&[
                request_allow("fenced", tick(20), "node-1"),
                request_allow("fresh", tick(20), "node-1"),
            ])
            .await
            .unwrap();
        let fenced_next = expect_run(outcomes[0].clone(), "fenced in a batch");
        let fresh_next = expect_run(outcomes[1].clone(), "fresh in a batch");
        assert!(fenced_next.fence > *fences.last().unwrap());
        assert!(fresh_next.fence > fresh.fence);
        assert!(fresh_next.fence < fenced_next.fence);
    }

    /// History keeps every finished or skipped tick, newest first, with its details, and
    /// about [`HISTORY_LEN`] of them.
    pub async fn every_jobs_history_is_read_at_once(c: Arc<dyn Store>) {
        let c = &*c;
        let mut written: Vec<Vec<HistoryEntry>> = vec![Vec::new(), Vec::new()];
        for (index, job) in ["many-a", "many-b"].into_iter().enumerate() {
            for step in 0..(3 + index) {
                let lease = expect_run(
                    claim(c, request(job, tick(step as i64), "node-a")).await,
                    "run",
                );
                let done = record(Outcome::Succeeded, step as u64);
                assert!(release(c, &lease, &done).await);
                written[index].insert(0, finished(&lease, &done));
            }
        }
        let jobs = ["many-b", "none", "many-a"].map(str::to_string);
        let read = c
            .histories(&jobs, 2)
            .await
            .unwrap_or_else(|e| panic!("histories failed: {e}"));
        assert_eq!(
            read,
            vec![
                written[1][..2].to_vec(),
                Vec::new(),
                written[0][..2].to_vec()
            ],
            "each job's newest two, in the order asked"
        );
        for (job, entries) in jobs.iter().zip(&read) {
            assert_eq!(
                &history(c, job, 2).await,
                entries,
                "as history() answers {job}"
            );
        }
        assert!(
            c.histories(&[], 5)
                .await
                .unwrap_or_else(|e| panic!("histories failed: {e}"))
                .is_empty()
        );
    }

    pub async fn history_is_newest_first_capped_and_complete(c: Arc<dyn Store>) {
        let c = &*c;
        assert_eq!(history(c, "written", 10).await, vec![], "no history yet");

        let outcomes = [
            Outcome::Succeeded,
            Outcome::Failed("disk full".to_string()),
            Outcome::Panicked("index out of bounds".to_string()),
            Outcome::TimedOut,
            Outcome::Cancelled,
            Outcome::LeaseLost,
        ];
        let total = 2 * HISTORY_LEN + 50;
        let mut written = Vec::new();
        let mut next_tick = 0;
        while written.len() < total {
            let i = written.len();
            let node = format!("node-{}", i % 3);
            let lease = expect_run(
                claim(c, request("written", tick(next_tick), &node)).await,
                "run",
            );
            next_tick += 1;
            if i % 10 == 9 {
                // Skip the next tick as an overlap.
                let other = format!("node-{}", (i + 1) % 3);
                let holder = expect_overlap(
                    claim(c, request("written", tick(next_tick), &other)).await,
                    "overlap",
                );
                assert_eq!(holder, lease.run_id());
                written.push(overlapped(tick(next_tick), &other, &holder));
                next_tick += 1;
            }
            let done = record(outcomes[i % outcomes.len()].clone(), i as u64 * 7);
            assert!(release(c, &lease, &done).await);
            written.push(finished(&lease, &done));
        }
        let newest_first: Vec<HistoryEntry> = written.into_iter().rev().collect();

        let kept = history(c, "written", 10 * HISTORY_LEN).await;
        assert!(
            (HISTORY_LEN..=2 * HISTORY_LEN).contains(&kept.len()),
            "{} entries kept of {total}, expected about {HISTORY_LEN}",
            kept.len()
        );
        assert_eq!(kept, newest_first[..kept.len()], "newest first, as written");

        assert_eq!(history(c, "written", 5).await, newest_first[..5]);
        assert_eq!(history(c, "written", 1).await, newest_first[..1]);
        assert_eq!(history(c, "written", 0).await, vec![]);
        assert_eq!(history(c, "never-ran", 10).await, vec![]);
        // Any `usize` is a valid limit, including "everything".
        assert_eq!(
            history(c, "written", usize::MAX).await,
            kept,
            "limit usize::MAX"
        );
    }

    /// Error texts come back as written: unicode, newlines, separators, empty.
    pub async fn history_keeps_error_text_verbatim(c: Arc<dyn Store>) {
        let c = &*c;
        let texts = [
            "connection refused: 10.0.0.1:5432",
            "línea 1\nligne 2 ✓ \"quoted\" \\ tab\there",
            "  padded  ",
            "",
        ];
        let mut written = Vec::new();
        for text in texts {
            for outcome in [
                Outcome::Failed(text.to_string()),
                Outcome::Panicked(text.to_string()),
            ] {
                let n = written.len() as i64;
                let lease = expect_run(claim(c, request("texts", tick(n), "node-a")).await, text);
                let done = record(outcome, 3);
                assert!(release(c, &lease, &done).await);
                written.push(finished(&lease, &done));
            }
        }
        let newest_first: Vec<HistoryEntry> = written.into_iter().rev().collect();
        assert_eq!(history(c, "texts", 100).await, newest_first);
    }

    /// A release sent again because its answer was lost (a cut connection) changes nothing
    /// the first did not: one history entry, the lease gone, and the answer still "ours".
    pub async fn a_release_sent_again_after_a_lost_answer_is_recorded_once(c: Arc<dyn Store>) {
        let c = &*c;
        let lease = expect_run(claim(c, request("again", tick(0), "node-a")).await, "run");
        let done = record(Outcome::Succeeded, 3);
        assert!(release(c, &lease, &done).await);
        assert!(
            release(c, &lease, &done).await,
            "the resend answers as the first did"
        );
        assert_eq!(history(c, "again", 10).await.len(), 1, "recorded once");
        // The next run is its own: claimed, released and recorded as usual.
        let next = expect_run(claim(c, request("again", tick(1), "node-b")).await, "next");
        assert!(release(c, &next, &done).await);
        assert_eq!(history(c, "again", 10).await.len(), 2);
        // A release of an expired lease is recorded once too.
        let short = ClaimRequest {
            lease_ttl: Duration::from_millis(20),
            ..request("again", tick(2), "node-c")
        };
        let expired = expect_run(claim(c, short).await, "short");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!release(c, &expired, &done).await, "the lease had expired");
        release(c, &expired, &done).await;
        assert_eq!(history(c, "again", 10).await.len(), 3);
    }

    /// A paused job's ticks are decided as paused, by whoever claims them, run by no one and
    /// counted; the first goes to history with who and why. Resume ends it from the next tick,
    /// recording the count; another job is never affected.
    pub async fn a_paused_job_decides_its_ticks_as_paused_until_resumed(c: Arc<dyn Store>) {
        let c = &*c;
        assert_eq!(c.pause_state("paused").await.unwrap(), None);
        let before = expect_run(claim(c, request("paused", tick(0), "node-a")).await, "run");
        assert!(release(c, &before, &record(Outcome::Succeeded, 1)).await);
        c.pause("paused", "ops@host", Some("INC-1: warehouse read-only"))
            .await
            .unwrap();
        assert_eq!(
            claim(c, request("paused", tick(1), "node-a")).await,
            ClaimOutcome::Paused
        );
        // Decided: the same tick again is taken, the next one paused too.
        assert_eq!(
            claim(c, request("paused", tick(1), "node-b")).await,
            ClaimOutcome::Taken
        );
        assert_eq!(
            claim(c, request("paused", tick(2), "node-b")).await,
            ClaimOutcome::Paused
        );
        // Others are not paused.
        expect_run(
            claim(c, request("other", tick(1), "node-a")).await,
            "other job",
        );
        let pause = c.pause_state("paused").await.unwrap().expect("paused");
        assert_eq!(pause.by, "ops@host");
        assert_eq!(pause.note.as_deref(), Some("INC-1: warehouse read-only"));
        assert_eq!(
            (pause.ticks, pause.first_tick_ms, pause.last_tick_ms),
            (2, Some(tick(1)), Some(tick(2)))
        );
        assert!(pause.since_ms > 0);
        // Pausing again replaces who and why, keeps the count.
        c.pause("paused", "lead@host", None).await.unwrap();
        let again = c
            .pause_state("paused")
            .await
            .unwrap()
            .expect("still paused");
        assert_eq!(
            (again.by.as_str(), again.note, again.ticks),
            ("lead@host", None, 2)
        );
        let entries = history(c, "paused", 10).await;
        assert_eq!(entries[0].outcome, "paused", "{entries:?}");
        assert_eq!(entries[0].tick_ms, tick(1));
        assert_eq!(
            entries[0].detail.as_deref(),
            Some("paused by ops@host: INC-1: warehouse read-only")
        );
        assert_eq!(
            entries.len(),
            2,
            "one entry per pause, not per tick: {entries:?}"
        );

        let ended = c
            .resume("paused", "ops@host")
            .await
            .unwrap()
            .expect("was paused");
        assert_eq!(ended.ticks, 2);
        assert_eq!(c.pause_state("paused").await.unwrap(), None);
        assert_eq!(
            c.resume("paused", "ops@host").await.unwrap(),
            None,
            "not paused"
        );
        let entries = history(c, "paused", 10).await;
        assert_eq!(entries[0].outcome, "resumed", "{entries:?}");
        assert_eq!(entries[0].tick_ms, tick(2));
        assert!(
            entries[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with("2 ticks paused")),
            "{entries:?}"
        );
        // From the next tick on, it runs again (no backfill of the paused ones).
        assert_eq!(
            claim(c, request("paused", tick(2), "node-a")).await,
            ClaimOutcome::Taken
        );
        expect_run(
            claim(c, request("paused", tick(3), "node-a")).await,
            "after resume",
        );
        // A job paused before it ever ran, resumed before any tick: nothing to record.
        c.pause("fresh", "ops@host", None).await.unwrap();
        assert!(c.resume("fresh", "ops@host").await.unwrap().is_some());
        assert_eq!(history(c, "fresh", 10).await, vec![]);
    }

    /// When a claim decides a tick while the job's mark is older than the schedule's previous
    /// tick, the ticks in between (nobody decided them: the fleet was down) are recorded once,
    /// as `missed`, with how many, the first and the last; consecutive ticks record nothing.
    pub async fn ticks_nobody_decided_are_recorded_as_missed_by_the_claim_that_skips_them(
        c: Arc<dyn Store>,
    ) {
        let c = &*c;
        let missed = |entries: &[HistoryEntry]| -> Vec<HistoryEntry> {
            entries
                .iter()
                .filter(|entry| entry.outcome == "missed")
                .cloned()
                .collect()
        };
        // A job's first claim has nothing before it.
        let first = expect_run(
            claim(c, request_scheduled("gap", tick(0), "node-a")).await,
            "0",
        );
        assert!(release(c, &first, &record(Outcome::Succeeded, 1)).await);
        let next = expect_run(
            claim(c, request_scheduled("gap", tick(1), "node-a")).await,
            "1",
        );
        assert!(release(c, &next, &record(Outcome::Succeeded, 1)).await);
        assert_eq!(missed(&history(c, "gap", 10).await), vec![]);
        // The fleet was down for ticks 2..=5: the claim of tick 6 records them.
        let after = expect_run(
            claim(c, request_scheduled("gap", tick(6), "node-b")).await,
            "6",
        );
        assert!(release(c, &after, &record(Outcome::Succeeded, 1)).await);
        // Refused claims of the same tick record nothing more.
        assert_eq!(
            claim(c, request_scheduled("gap", tick(6), "node-c")).await,
            ClaimOutcome::Taken
        );
        let entries = history(c, "gap", 10).await;
        let gap = missed(&entries);
        assert_eq!(gap.len(), 1, "{entries:?}");
        assert_eq!(gap[0].tick_ms, tick(5), "the last missed tick");
        assert_eq!(
            gap[0].node, "node-b",
            "recorded by the claimer that skipped them"
        );
        assert_eq!(
            gap[0].detail.as_deref(),
            Some("4 ticks missed, 2026-01-01T00:02:00.000Z to 2026-01-01T00:05:00.000Z")
        );
        // A paused decision that skips ticks records them too; a claim without the schedule
        // cannot tell, and records nothing.
        c.pause("gap", "ops@host", None).await.unwrap();
        assert_eq!(
            claim(c, request_scheduled("gap", tick(8), "node-a")).await,
            ClaimOutcome::Paused
        );
        c.resume("gap", "ops@host").await.unwrap();
        let entries = history(c, "gap", 20).await;
        let gaps = missed(&entries);
        assert_eq!(gaps.len(), 2, "{entries:?}");
        assert!(
            gaps[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with("1 tick missed")),
            "{gaps:?}"
        );
        expect_run(
            claim(c, request("gap", tick(20), "node-a")).await,
            "no schedule",
        );
        assert_eq!(missed(&history(c, "gap", 20).await).len(), 2);
    }

    /// Registrations follow the members: a member registering prunes the registrations of
    /// gone members, one leaving takes its own along unless it is a job's last registrant,
    /// one forgotten as silent too, and a job no live member registers keeps exactly one,
    /// the last.
    pub async fn registrations_follow_the_members_and_an_orphan_keeps_its_last(c: Arc<dyn Store>) {
        let c = &*c;
        let def = |name: &str, schedule: &str| fourit::coordinator::JobDefinition {
            name: name.to_string(),
            schedule: schedule.to_string(),
            timezone: "UTC".to_string(),
            overlap: Overlap::Skip,
            timeout: None,
            grace: None,
            location: "src/jobs.rs:1".to_string(),
            version: None,
        };
        let long = Duration::from_secs(60);
        let nodes = |catalog: &[fourit::coordinator::CatalogEntry], job: &str| -> Vec<String> {
            catalog
                .iter()
                .find(|entry| entry.name == job)
                .map(|entry| entry.registrations.iter().map(|(n, _)| n.clone()).collect())
                .unwrap_or_default()
        };
        // Three restarts of one member, each a new node id, each leaving gracefully.
        for generation in 0..3 {
            let node = format!("gen{generation}");
            c.heartbeat(&node, long, None).await.unwrap();
            let answer = c
                .register(
                    &node,
                    &[def("kept", "* * * * *"), def("dropped", "0 * * * *")],
                )
                .await
                .unwrap();
            assert_eq!(answer[0].len(), 1, "only the live member's: {answer:?}");
            c.leave(&node).await.unwrap();
        }
        let catalog = c.catalog().await.unwrap();
        assert_eq!(nodes(&catalog, "kept"), ["gen2"], "{catalog:?}");
        // Two members; one leaves: its registration goes (the other still registers it).
        for node in ["x", "y"] {
            c.heartbeat(node, long, None).await.unwrap();
            c.register(node, &[def("kept", "*/5 * * * *")])
                .await
                .unwrap();
        }
        c.leave("y").await.unwrap();
        let catalog = c.catalog().await.unwrap();
        assert_eq!(nodes(&catalog, "kept"), ["x"], "{catalog:?}");
        // "dropped" is registered by nobody live: its last registration stays, orphaned.
        assert_eq!(nodes(&catalog, "dropped"), ["gen2"], "{catalog:?}");
        // x goes silent and is forgotten by another member's heartbeat: it is the last
        // registrant of "kept", so it stays; a new registrant then replaces it.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let beat = c
            .heartbeat("z", Duration::from_millis(10), None)
            .await
            .unwrap();
        assert_eq!(beat.evicted, ["x"]);
        let catalog = c.catalog().await.unwrap();
        assert_eq!(nodes(&catalog, "kept"), ["x"], "{catalog:?}");
        c.register("z", &[def("kept", "*/5 * * * *")])
            .await
            .unwrap();
        let catalog = c.catalog().await.unwrap();
        assert_eq!(nodes(&catalog, "kept"), ["z"], "{catalog:?}");
        assert_eq!(nodes(&catalog, "dropped"), ["gen2"], "{catalog:?}");
        c.leave("z").await.unwrap();
        for job in ["kept", "dropped"] {
            c.remove(job).await.unwrap();
        }
    }

    /// Each member's registration of a job is kept beside the job's state; a job is listed
    /// with every registration, its last run and the run in progress, until removed.
    pub async fn the_catalog_holds_each_members_definition_and_the_jobs_state_until_removed(
        c: Arc<dyn Store>,
    ) {
        let c = &*c;
        let every_minute = fourit::coordinator::JobDefinition {
            name: "cataloged".to_string(),
            schedule: "* * * * *".to_string(),
            timezone: "UTC".to_string(),
            overlap: Overlap::Skip,
            timeout: Some(Duration::from_secs(30)),
            grace: None,
            location: "src/jobs.rs:12".to_string(),
            version: Some("1.4.0".to_string()),
        };
        // Live members, as a scheduler beats before it registers (registrations follow the
        // live members).
        for node in ["node-a", "node-b"] {
            c.heartbeat(node, Duration::from_secs(60), None)
                .await
                .unwrap();
        }
        let mine = c
            .register("node-a", std::slice::from_ref(&every_minute))
            .await
            .unwrap();
        assert_eq!(
            mine,
            vec![vec![("node-a".to_string(), every_minute.clone())]]
        );
        let hourly = fourit::coordinator::JobDefinition {
            schedule: "0 * * * *".to_string(),
            version: Some("1.5.0".to_string()),
            ..every_minute.clone()
        };
        let both = c
            .register("node-b", std::slice::from_ref(&hourly))
            .await
            .unwrap();
        assert_eq!(
            both[0].len(),
            2,
            "node-b learns of node-a's registration: {both:?}"
        );
        assert!(!every_minute.agrees_with(&hourly));

        let lease = expect_run(
            claim(c, request("cataloged", tick(0), "node-a")).await,
            "run",
        );
        let catalog = c.catalog().await.unwrap();
        let entry = catalog
            .iter()
            .find(|entry| entry.name == "cataloged")
            .unwrap_or_else(|| panic!("not listed: {catalog:?}"));
        assert_eq!(
            entry.registrations,
            vec![
                ("node-a".to_string(), every_minute.clone()),
                ("node-b".to_string(), hourly.clone())
            ]
        );
        assert_eq!(
            entry.state.running.as_deref(),
            Some(lease.run_id().as_str())
        );
        assert_eq!(entry.state.last_outcome.as_deref(), Some("running"));
        assert_eq!(entry.state.last_node.as_deref(), Some("node-a"));
        assert!(release(c, &lease, &record(Outcome::Failed("disk full".into()), 5)).await);
        let catalog = c.catalog().await.unwrap();
        let entry = catalog
            .iter()
            .find(|entry| entry.name == "cataloged")
            .unwrap();
        assert_eq!(entry.state.running, None);
        assert_eq!(entry.state.last_outcome.as_deref(), Some("failed"));
        assert_eq!(entry.state.last_error.as_deref(), Some("disk full"));
        assert!(entry.state.last_started_ms.is_some() && entry.state.last_finished_ms.is_some());
        // A member registering again replaces its own definition.
        c.register("node-b", std::slice::from_ref(&every_minute))
            .await
            .unwrap();
        let catalog = c.catalog().await.unwrap();
        let entry = catalog
            .iter()
            .find(|entry| entry.name == "cataloged")
            .unwrap();
        assert!(
            entry
                .registrations
                .iter()
                .all(|(_, def)| def.agrees_with(&every_minute))
        );

        c.remove("cataloged").await.unwrap();
        let catalog = c.catalog().await.unwrap();
        assert!(
            catalog.iter().all(|entry| entry.name != "cataloged"),
            "{catalog:?}"
        );
        assert_eq!(history(c, "cataloged", 10).await, vec![]);
        // Gone means gone: the job starts afresh.
        expect_run(
            claim(c, request("cataloged", tick(0), "node-a")).await,
            "afresh",
        );
    }

    /// A manual run is taken by exactly one member, under a fence of its own, recorded as
    /// `manual` with who asked; it follows the overlap policy unless forced, and never moves
    /// the job's high-water mark. Heartbeats say when one is waiting.
    pub async fn a_manual_run_is_taken_once_and_never_moves_the_mark(c: Arc<dyn Store>) {
        use fourit::coordinator::{ManualOutcome, ManualState};
        let c = &*c;
        let scheduled = expect_run(claim(c, request("manual", tick(0), "node-a")).await, "0");
        assert!(release(c, &scheduled, &record(Outcome::Succeeded, 1)).await);
        assert!(
            !c.heartbeat("node-a", MEMBER_TTL, None)
                .await
                .unwrap()
                .manual_pending
        );

        let asked = c.request_manual("manual", "ops@host", false).await.unwrap();
        assert_eq!(
            c.manual_state("manual", &asked.id).await.unwrap(),
            Some(ManualState::Pending)
        );
        assert!(
            c.heartbeat("node-a", MEMBER_TTL, None)
                .await
                .unwrap()
                .manual_pending
        );
        assert_eq!(c.manual_requests().await.unwrap(), vec![asked.clone()]);
        let ttl = Duration::from_secs(30);
        let won = c
            .claim_manual(&asked, "node-b", ttl, Overlap::Skip)
            .await
            .unwrap();
        let lease = match won {
            ManualOutcome::Run(lease) => lease,
            other => panic!("expected Run, got {other:?}"),
        };
        assert_eq!(
            lease.tick_ms, asked.requested_ms,
            "its tick is the instant asked"
        );
        assert!(lease.fence.get() > scheduled.fence.get());
        assert_eq!(
            c.claim_manual(&asked, "node-c", ttl, Overlap::Skip)
                .await
                .unwrap(),
            ManualOutcome::Taken,
            "once fleet-wide"
        );
        assert_eq!(c.manual_requests().await.unwrap(), vec![]);
        assert!(
            !c.heartbeat("node-a", MEMBER_TTL, None)
                .await
                .unwrap()
                .manual_pending
        );
        assert_eq!(
            c.manual_state("manual", &asked.id).await.unwrap(),
            Some(ManualState::Started {
                node: "node-b".to_string(),
                fence: lease.fence.get()
            })
        );
        let entries = history(c, "manual", 10).await;
        assert_eq!(entries[0].outcome, "manual");
        assert_eq!(entries[0].detail.as_deref(), Some("asked by ops@host"));
        assert_eq!(entries[0].fence, Some(lease.fence.get()));
        // Not forced, while it runs: a second manual run is skipped as an overlap.
        let second = c.request_manual("manual", "ops@host", false).await.unwrap();
        assert!(matches!(
            c.claim_manual(&second, "node-a", ttl, Overlap::Skip)
                .await
                .unwrap(),
            ManualOutcome::Overlap { .. }
        ));
        assert!(matches!(
            c.manual_state("manual", &second.id).await.unwrap(),
            Some(ManualState::Skipped { .. })
        ));
        // Forced: it runs beside it, under a lease of its own.
        let forced = c.request_manual("manual", "ops@host", true).await.unwrap();
        let beside = match c
            .claim_manual(&forced, "node-a", ttl, Overlap::Skip)
            .await
            .unwrap()
        {
            ManualOutcome::Run(lease) => lease,
            other => panic!("expected Run, got {other:?}"),
        };
        assert!(
            keep_alive(c, &lease, ttl).await,
            "the first manual run keeps its lease"
        );
        assert!(release(c, &beside, &record(Outcome::Succeeded, 2)).await);
        assert!(release(c, &lease, &record(Outcome::Succeeded, 3)).await);
        // The mark did not move: the next scheduled tick runs as usual.
        expect_run(
            claim(c, request("manual", tick(1), "node-a")).await,
            "the next tick",
        );
    }

    /// A heartbeat makes a node a member with a recent timestamp; leaving removes it.
    pub async fn heartbeat_adds_a_member_and_leave_removes_it(c: Arc<dyn Store>) {
        let c = &*c;
        let slack = 2_000; // ms between this process's clock and the backend's
        assert_eq!(members(c).await, vec![]);

        let before = Utc::now().timestamp_millis();
        c.heartbeat("node-a", MEMBER_TTL, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        c.heartbeat("node-b", MEMBER_TTL, None).await.unwrap();
        let after = Utc::now().timestamp_millis();
        let seen = members(c).await;
        let names: Vec<&str> = seen.iter().map(|(node, _)| node.as_str()).collect();
        assert_eq!(names, ["node-a", "node-b"], "oldest first: {seen:?}");
        for (node, at) in &seen {
            assert!(
                (before - slack..=after + slack).contains(at),
                "{node}'s heartbeat {at} is not between {before} and {after}"
            );
        }
        assert!(seen[0].1 < seen[1].1, "{seen:?}");

        // A new heartbeat moves node-a to the newest place.
        tokio::time::sleep(Duration::from_millis(5)).await;
        c.heartbeat("node-a", MEMBER_TTL, None).await.unwrap();
        let seen = members(c).await;
        let names: Vec<&str> = seen.iter().map(|(node, _)| node.as_str()).collect();
        assert_eq!(names, ["node-b", "node-a"], "{seen:?}");
        assert!(seen[1].1 > seen[0].1);

        c.leave("node-a").await.unwrap();
        let seen = members(c).await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].0, "node-b");
        c.leave("never-joined").await.unwrap();
        c.leave("node-b").await.unwrap();
        assert_eq!(members(c).await, vec![]);
    }

    /// A member's clock offset, as its heartbeat gives it, is kept beside it: a heartbeat
    /// without one keeps the last, and a member forgotten takes its offset along.
    pub async fn members_carry_the_clock_offset_their_heartbeat_gave(c: Arc<dyn Store>) {
        let c = &*c;
        let offsets = |seen: Vec<Member>| -> Vec<(String, Option<i64>)> {
            seen.into_iter()
                .map(|member| (member.node, member.clock_offset_us))
                .collect()
        };
        c.heartbeat("node-a", MEMBER_TTL, Some(-1_250))
            .await
            .unwrap();
        c.heartbeat("node-b", MEMBER_TTL, None).await.unwrap();
        let mut seen = offsets(c.members().await.unwrap());
        seen.sort();
        assert_eq!(
            seen,
            [
                ("node-a".to_string(), Some(-1_250)),
                ("node-b".to_string(), None)
            ]
        );

        c.heartbeat("node-b", MEMBER_TTL, Some(40_000))
            .await
            .unwrap();
        c.heartbeat("node-a", MEMBER_TTL, None).await.unwrap();
        let mut seen = offsets(c.members().await.unwrap());
        seen.sort();
        assert_eq!(
            seen,
            [
                ("node-a".to_string(), Some(-1_250)),
                ("node-b".to_string(), Some(40_000))
            ],
            "a heartbeat without an offset keeps the last one"
        );

        // node-a is forgotten (silent past the limit) and comes back without an offset: the
        // old one went with it.
        tokio::time::sleep(Duration::from_millis(30)).await;
        c.heartbeat("node-b", Duration::from_millis(10), Some(41_000))
            .await
            .unwrap();
        c.heartbeat("node-a", MEMBER_TTL, None).await.unwrap();
        let mut seen = offsets(c.members().await.unwrap());
        seen.sort();
        assert_eq!(
            seen,
            [
                ("node-a".to_string(), None),
                ("node-b".to_string(), Some(41_000))
            ]
        );
    }

    /// A heartbeat answers the coordinator's time and the members alive within the given
    /// time, and forgets the others, naming those (once) as silent; a member that left is
    /// not named.
    pub async fn a_heartbeat_answers_the_live_members_and_forgets_silent_ones(c: Arc<dyn Store>) {
        let c = &*c;
        let beat = c.heartbeat("node-a", MEMBER_TTL, None).await.unwrap();
        assert_eq!(beat.members, ["node-a"]);
        if let Some(server_us) = beat.server_us {
            let local_us = Utc::now().timestamp_micros();
            assert!(
                (server_us - local_us).abs() < 2_000_000,
                "{server_us} vs {local_us}"
            );
        }
        let beat = c.heartbeat("node-b", MEMBER_TTL, None).await.unwrap();
        assert_eq!(beat.members, ["node-a", "node-b"]);
        assert!(
            beat.evicted.is_empty(),
            "nobody was silent: {:?}",
            beat.evicted
        );
        c.heartbeat("node-c", MEMBER_TTL, None).await.unwrap();
        // node-c leaves: gone, but not silent.
        c.leave("node-c").await.unwrap();
        // Time passes (the event is the clock moving on): node-a's last beat grows old.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let beat = c
            .heartbeat("node-b", Duration::from_millis(10), None)
            .await
            .unwrap();
        assert_eq!(
            beat.members,
            ["node-b"],
            "node-a was silent for longer than 10 ms"
        );
        assert_eq!(
            beat.evicted,
            ["node-a"],
            "the heartbeat that forgot node-a names it; node-c left and is not named"
        );
        let again = c
            .heartbeat("node-b", Duration::from_millis(10), None)
            .await
            .unwrap();
        assert!(again.evicted.is_empty(), "named once: {:?}", again.evicted);
        let seen = members(c).await;
        assert_eq!(seen.len(), 1, "forgotten members are removed: {seen:?}");
    }

    /// The preferred member is admitted at once, even inside the handoff window.
    pub async fn the_preferred_claimer_is_admitted_at_once(c: Arc<dyn Store>) {
        let c = &*c;
        let now = Utc::now().timestamp_millis();
        let handoff = Duration::from_secs(30);
        let lease = expect_run(
            claim(
                c,
                request_handoff("handoff", now, "node-a", "node-a", handoff),
            )
            .await,
            "preferred",
        );
        assert_eq!(lease.node.as_ref(), "node-a");
        // Once it has claimed, the others are told the tick is taken, not to wait.
        assert_eq!(
            claim(
                c,
                request_handoff("handoff", now, "node-b", "node-a", handoff)
            )
            .await,
            ClaimOutcome::Taken
        );
    }

    /// Until tick + handoff (by the coordinator's clock), another member is told when to try
    /// again, and is not admitted.
    pub async fn others_are_refused_until_the_handoff_window_closes(c: Arc<dyn Store>) {
        let c = &*c;
        let now = Utc::now().timestamp_millis();
        let handoff = Duration::from_secs(30);
        match claim(
            c,
            request_handoff("handoff", now, "node-b", "node-a", handoff),
        )
        .await
        {
            ClaimOutcome::Retry { at_ms, now_ms } => {
                assert_eq!(at_ms, now + 30_000);
                // The coordinator's own time, so the claimer can wait by it.
                assert!(
                    (now..now + 5_000).contains(&now_ms),
                    "now_ms {now_ms} vs the test's {now}"
                );
            }
            other => panic!("expected Retry, got {other:?}"),
        }
        // The preferred member still gets the tick afterwards.
        expect_run(
            claim(
                c,
                request_handoff("handoff", now, "node-a", "node-a", handoff),
            )
            .await,
            "preferred after a refused early claim",
        );
    }

    /// After tick + handoff, any member is admitted: a dead preferred member costs the
    /// handoff, not the tick.
    pub async fn anyone_is_admitted_after_the_handoff_window(c: Arc<dyn Store>) {
        let c = &*c;
        let past = Utc::now().timestamp_millis() - 5_000;
        let lease = expect_run(
            claim(
                c,
                request_handoff(
                    "handoff",
                    past,
                    "node-b",
                    "node-a",
                    Duration::from_millis(100),
                ),
            )
            .await,
            "after the window",
        );
        assert_eq!(lease.node.as_ref(), "node-b");
    }

    /// A refused early claim leaves no trace: no high-water mark, no fence, no history.
    pub async fn a_refused_early_claim_records_nothing(c: Arc<dyn Store>) {
        let c = &*c;
        let now = Utc::now().timestamp_millis();
        let handoff = Duration::from_secs(30);
        for node in ["node-b", "node-c", "node-d"] {
            assert!(matches!(
                claim(c, request_handoff("quiet", now, node, "node-a", handoff)).await,
                ClaimOutcome::Retry { .. }
            ));
        }
        assert_eq!(history(c, "quiet", 10).await, vec![]);
        // An older tick is still claimable: the refused claims set no high-water mark.
        let lease = expect_run(
            claim(c, request("quiet", now - 1_000, "node-b")).await,
            "older",
        );
        assert_eq!(lease.fence.get(), 1, "the refused claims took no fence");
    }

    /// A tick later than the coordinator's clock (beyond the tolerance) is refused as early,
    /// whoever claims it, preferred or not: nothing is recorded, so the high-water mark never
    /// moves past the coordinator's present and the ticks in between stay claimable.
    pub async fn a_tick_in_the_coordinators_future_is_refused_and_records_nothing(
        c: Arc<dyn Store>,
    ) {
        let c = &*c;
        let now = Utc::now().timestamp_millis();
        let ahead = now + 30_000;
        for request in [
            request("future", ahead, "node-a"),
            request_handoff(
                "future",
                ahead,
                "node-a",
                "node-a",
                Duration::from_millis(25),
            ),
            request_handoff(
                "future",
                ahead,
                "node-b",
                "node-a",
                Duration::from_millis(25),
            ),
            request_allow("future", ahead, "node-a"),
        ] {
            match claim(c, request.clone()).await {
                ClaimOutcome::Early { now_ms } => assert!(
                    (now..now + 5_000).contains(&now_ms),
                    "now_ms {now_ms} is the coordinator's time, the test's is {now}"
                ),
                other => panic!("{request:?}: expected Early, got {other:?}"),
            }
        }
        assert_eq!(history(c, "future", 10).await, vec![]);
        // The ticks up to now are still claimable: no mark was set, no fence taken.
        let lease = expect_run(claim(c, request("future", now, "node-b")).await, "now");
        assert_eq!(lease.fence.get(), 1, "the refused claims took no fence");
        // A tick already claimed is answered taken, not early, however far ahead it was.
        assert_eq!(
            claim(c, request("future", now - 1_000, "node-c")).await,
            ClaimOutcome::Taken
        );
    }

    /// A claim sent just before its tick (the scheduler prepares claims a moment ahead, and
    /// its offset estimate errs by a fraction of a round trip) is admitted.
    pub async fn a_tick_within_the_tolerance_of_the_coordinators_clock_is_admitted(
        c: Arc<dyn Store>,
    ) {
        let c = &*c;
        // The coordinator's clock is this host's (Redis runs here), and the claim reaches it
        // after this reading, so the tick is at most 2 ms ahead of the coordinator's clock.
        let tolerance_ms = i64::try_from(FUTURE_TICK_TOLERANCE.as_millis()).unwrap_or(0);
        assert!(
            tolerance_ms > 2,
            "the tolerance covers a claim sent 2 ms early"
        );
        let tick = Utc::now().timestamp_millis() + 2;
        expect_run(
            claim(c, request("soon", tick, "node-a")).await,
            "2 ms early",
        );
    }

    /// In one batch, a future tick is refused and the due ones beside it are decided as usual.
    pub async fn a_future_tick_in_a_batch_does_not_hold_back_the_others(c: Arc<dyn Store>) {
        let c = &*c;
        let now = Utc::now().timestamp_millis();
        let outcomes = c
            .claim(&[
                request("batch-a", now - 1_000, "node-a"),
                request("batch-b", now + 3_600_000, "node-a"),
                request("batch-c", now, "node-a"),
            ])
            .await
            .unwrap_or_else(|e| panic!("batch claim failed: {e}"));
        assert!(matches!(outcomes[0], ClaimOutcome::Run(_)), "{outcomes:?}");
        assert!(
            matches!(outcomes[1], ClaimOutcome::Early { .. }),
            "{outcomes:?}"
        );
        assert!(matches!(outcomes[2], ClaimOutcome::Run(_)), "{outcomes:?}");
    }

    /// A claim sent twice (its first answer lost to a cut connection or a timeout) gives one
    /// run: the second answer is `Resumed` with the same lease and fence, so the claimer runs
    /// the tick it had won, with its lease taken again if it expired meanwhile. A new claim
    /// (another process, even with the same node id), an overlap or a released run sent
    /// again is not resumed.
    pub async fn a_claim_sent_again_after_a_lost_answer_resumes_the_same_run(c: Arc<dyn Store>) {
        let c = &*c;
        let now = Utc::now().timestamp_millis();
        let sent = request("resend", now - 2_000, "node-a");
        let first = expect_run(claim(c, sent.clone()).await, "first");
        assert_eq!(
            claim(c, sent.clone()).await,
            ClaimOutcome::Resumed(first.clone()),
            "the same claim again"
        );
        for other in [
            request("resend", now - 2_000, "node-a"),
            request("resend", now - 2_000, "node-b"),
        ] {
            assert_eq!(
                claim(c, other.clone()).await,
                ClaimOutcome::Taken,
                "a new claim of the tick: {other:?}"
            );
        }
        // The next tick while the first run holds the lease is an overlap; sent again, it is
        // still not a run.
        let next = request("resend", now - 1_000, "node-a");
        expect_overlap(claim(c, next.clone()).await, "the next tick");
        assert_eq!(
            claim(c, next).await,
            ClaimOutcome::Taken,
            "an overlap sent again"
        );
        // Released, the first run is not resumed.
        let record = RunRecord {
            outcome: Outcome::Succeeded,
            started: Utc::now(),
            duration: Duration::from_millis(5),
        };
        assert!(
            c.release(&first, &record)
                .await
                .unwrap_or_else(|e| panic!("release: {e}"))
        );
        assert_eq!(
            claim(c, sent).await,
            ClaimOutcome::Taken,
            "a released run sent again"
        );
        // A lease that expired before the claim was sent again is taken again, by that claim
        // alone.
        let short = ClaimRequest {
            lease_ttl: Duration::from_millis(50),
            ..request("resend-expired", now, "node-a")
        };
        let won = expect_run(claim(c, short.clone()).await, "short lease");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(
            claim(c, short.clone()).await,
            ClaimOutcome::Resumed(won.clone())
        );
        assert!(
            c.keep_alive(&won, LONG_LEASE)
                .await
                .unwrap_or_else(|e| panic!("keep-alive: {e}")),
            "the lease is the run's again"
        );
        // With overlap allowed, each run's own lease is checked.
        let allowed = request_allow("resend-allow", now, "node-a");
        let run = expect_run(claim(c, allowed.clone()).await, "allow");
        assert_eq!(claim(c, allowed).await, ClaimOutcome::Resumed(run));
    }

    /// One call claims many jobs, answering each request in order; requests in one batch
    /// see the effects of the earlier ones.
    pub async fn a_batch_claim_answers_each_request_in_order(c: Arc<dyn Store>) {
        let c = &*c;
        const JOBS: usize = 500;
        let job = |i: usize| format!("batch-{i:03}");
        let now = tick(10);
        assert_eq!(c.claim(&[]).await.unwrap(), vec![], "an empty batch");

        // Prepare: a third of the jobs already claimed this tick, a third still running the
        // previous tick, a third untouched.
        let prepare: Vec<ClaimRequest> = (0..JOBS)
            .filter(|i| i % 3 != 2)
            .map(|i| {
                let tick_ms = if i % 3 == 0 { now } else { now - 60_000 };
                request(&job(i), tick_ms, "early")
            })
            .collect();
        let prepared = c.claim(&prepare).await.unwrap();
        assert_eq!(prepared.len(), prepare.len());
        let mut early: HashMap<String, Lease> = HashMap::new();
        for (req, outcome) in prepare.iter().zip(prepared) {
            let lease = expect_run(outcome, &req.job);
            assert_eq!(
                (lease.job.clone(), lease.tick_ms),
                (req.job.clone(), req.tick_ms)
            );
            early.insert(req.job.to_string(), lease);
        }

        let batch: Vec<ClaimRequest> = (0..JOBS).map(|i| request(&job(i), now, "batch")).collect();
        let outcomes = c.claim(&batch).await.unwrap();
        assert_eq!(outcomes.len(), JOBS);
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let name = job(i);
            match i % 3 {
                0 => assert_eq!(outcome, ClaimOutcome::Taken, "{name}"),
                1 => assert_eq!(
                    outcome,
                    ClaimOutcome::Overlap {
                        holder: early[&name].run_id()
                    },
                    "{name}"
                ),
                _ => {
                    let lease = expect_run(outcome, &name);
                    assert_eq!(&*lease.job, name);
                    assert_eq!(lease.tick_ms, now);
                    assert_eq!(&*lease.node, "batch");
                }
            }
        }

        // Within one batch, later requests see the earlier ones.
        let outcomes = c
            .claim(&[
                request("sequenced", tick(1), "node-a"),
                request("sequenced", tick(1), "node-b"),
                request("sequenced", tick(2), "node-b"),
                request("sequenced", tick(0), "node-b"),
            ])
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 4);
        let first = expect_run(outcomes[0].clone(), "first of the batch");
        assert_eq!(&*first.node, "node-a");
        assert_eq!(outcomes[1], ClaimOutcome::Taken);
        assert_eq!(
            outcomes[2],
            ClaimOutcome::Overlap {
                holder: first.run_id()
            }
        );
        assert_eq!(outcomes[3], ClaimOutcome::Taken);
    }

    /// A tick decided under a handoff (run, or skipped as an overlap) is announced on the
    /// notice feed, in order; a claim that decides nothing (refused in the window, taken) or
    /// that nobody waits for (no preferred member) is not.
    pub async fn decided_ticks_are_announced_and_nothing_else(c: Arc<dyn Store>) {
        let mut notices = c
            .claim_notices()
            .unwrap_or_else(|| panic!("the backend has no notice feed"));
        let c = &*c;
        // A second back, so that the tick after it is not in the coordinator's future.
        let now = Utc::now().timestamp_millis() - 1_000;
        let handoff = Duration::from_secs(30);
        let by =
            |job: &str, tick_ms, node: &str| request_handoff(job, tick_ms, node, "node-a", handoff);
        assert!(matches!(
            claim(c, by("announced", now, "node-b")).await,
            ClaimOutcome::Retry { .. }
        ));
        expect_run(
            claim(c, request("unannounced", now, "node-a")).await,
            "alone",
        );
        expect_run(claim(c, by("announced", now, "node-a")).await, "preferred");
        assert_eq!(
            claim(c, by("announced", now, "node-c")).await,
            ClaimOutcome::Taken
        );
        expect_overlap(
            claim(c, by("announced", now + 1_000, "node-a")).await,
            "the next tick, while the first run holds the lease",
        );
        expect_run(claim(c, by("last", now, "node-a")).await, "last");
        let mut heard = Vec::new();
        while heard.len() < 3 {
            let notice = tokio::time::timeout(Duration::from_secs(10), notices.next())
                .await
                .unwrap_or_else(|_| panic!("no notice within 10 s; heard {heard:?}"))
                .unwrap_or_else(|| panic!("the notice feed ended; heard {heard:?}"));
            heard.push((notice.job.to_string(), notice.tick_ms - now));
        }
        assert_eq!(
            heard,
            [
                ("announced".to_string(), 0),
                ("announced".to_string(), 1_000),
                ("last".to_string(), 0),
            ]
        );
    }

    /// Runs released together in one call are each answered as a single release would be:
    /// ours is deleted and recorded, a stale one is recorded but reported as not held.
    pub async fn a_batch_release_answers_each_run_in_order(c: Arc<dyn Store>) {
        let c = &*c;
        let first = expect_run(
            claim(c, request("released-a", tick(1), "node-a")).await,
            "a",
        );
        let second = expect_run(
            claim(c, request("released-b", tick(1), "node-b")).await,
            "b",
        );
        let stale = Lease {
            fence: FenceToken(second.fence.get() + 7),
            ..second.clone()
        };
        let runs = [
            (first.clone(), record(Outcome::Succeeded, 3)),
            (
                stale.clone(),
                record(Outcome::Failed("boom".to_string()), 4),
            ),
            (second.clone(), record(Outcome::Succeeded, 5)),
        ];
        let answers: Vec<bool> = c
            .release_all(&runs)
            .await
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|e| panic!("a batched release failed: {e}")))
            .collect();
        assert_eq!(answers, [true, false, true]);
        assert!(c.release_all(&[]).await.is_empty(), "an empty batch");
        assert_eq!(
            history(c, "released-a", 10).await,
            vec![finished(&first, &runs[0].1)]
        );
        assert_eq!(
            history(c, "released-b", 10).await,
            vec![finished(&second, &runs[2].1), finished(&stale, &runs[1].1)]
        );
        // Both jobs are free again.
        expect_run(
            claim(c, request("released-a", tick(2), "node-c")).await,
            "a again",
        );
        expect_run(
            claim(c, request("released-b", tick(2), "node-c")).await,
            "b again",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The cases only Redis has: each starts its own server

mod redis_cases {
    use super::*;

    /// How long any single call may take before the test counts it as a hang.
    const CALL_DEADLINE: Duration = Duration::from_secs(10);

    /// Awaits a coordinator call that must answer (with anything) within [`CALL_DEADLINE`].
    async fn answers<T>(what: &str, call: impl Future<Output = T>) -> T {
        tokio::time::timeout(CALL_DEADLINE, call)
            .await
            .unwrap_or_else(|_| panic!("{what} did not answer within {CALL_DEADLINE:?}"))
    }

    /// Every key on the server that matches `pattern`.
    async fn keys(server: &RedisServer, pattern: &str) -> BTreeSet<String> {
        let mut con = server.connection().await;
        let mut keys = BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = ::redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await
                .expect("SCAN answers");
            keys.extend(batch);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    async fn key_type(server: &RedisServer, key: &str) -> String {
        ::redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut server.connection().await)
            .await
            .expect("TYPE answers")
    }

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|key| key.to_string()).collect()
    }

    /// Fail closed: while Redis is down every call is an error (never a claim), answered
    /// within a bounded time; after Redis is back, claims work again on their own.
    pub async fn an_unreachable_redis_yields_an_error_not_a_claim() {
        let mut server = RedisServer::start();
        let c = connect(&server, NAMESPACE).await;
        let c = &*c;
        let lease = expect_run(
            claim(c, request("outage", tick(0), "node-a")).await,
            "before",
        );

        server.stop();
        let claimed = answers("claim", c.claim(&[request("outage", tick(1), "node-a")])).await;
        let err = claimed.expect_err("a claim while Redis is down must fail, not answer");
        assert!(err.is_unavailable(), "claim error: {err:?}");
        let batch = [
            request("outage", tick(2), "node-a"),
            request("outage-2", tick(2), "node-a"),
        ];
        let err = answers("batch claim", c.claim(&batch))
            .await
            .expect_err("a batch claim while Redis is down must fail");
        assert!(err.is_unavailable(), "batch claim error: {err:?}");
        let err = answers("keep_alive", c.keep_alive(&lease, LONG_LEASE))
            .await
            .expect_err("keep_alive while Redis is down must fail");
        assert!(err.is_unavailable(), "keep_alive error: {err:?}");
        let done = record(Outcome::Succeeded, 1);
        let err = answers("release", c.release(&lease, &done))
            .await
            .expect_err("release while Redis is down must fail");
        assert!(err.is_unavailable(), "release error: {err:?}");
        let err = answers("heartbeat", c.heartbeat("node-a", MEMBER_TTL, None))
            .await
            .expect_err("heartbeat");
        assert!(err.is_unavailable(), "heartbeat error: {err:?}");
        let err = answers("leave", c.leave("node-a"))
            .await
            .expect_err("leave");
        assert!(err.is_unavailable(), "leave error: {err:?}");
        let err = answers("server_time", c.server_time())
            .await
            .expect_err("server_time");
        assert!(err.is_unavailable(), "server_time error: {err:?}");
        let err = answers("members", c.members()).await.expect_err("members");
        assert!(err.is_unavailable(), "members error: {err:?}");
        let err = answers("history", c.history("outage", 10))
            .await
            .expect_err("history");
        assert!(err.is_unavailable(), "history error: {err:?}");

        // Back (empty, without persistence): the same coordinator recovers by itself.
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut attempt = 3;
        let recovered = loop {
            // Another node: the emptied server counts fences from the start again, so
            // node-a's first new run id would equal the old lease's.
            match answers(
                "claim",
                c.claim(&[request("outage", tick(attempt), "node-b")]),
            )
            .await
            {
                Ok(mut outcomes) => break outcomes.pop().unwrap(),
                Err(err) => {
                    assert!(
                        Instant::now() < deadline,
                        "claims still fail 20 s after Redis came back: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            attempt += 1;
        };
        let fresh = expect_run(recovered, "after the restart");
        // Every other call works again too.
        assert!(
            !keep_alive(c, &lease, LONG_LEASE).await,
            "the old lease died with Redis"
        );
        assert!(keep_alive(c, &fresh, LONG_LEASE).await);
        assert!(release(c, &fresh, &done).await);
        c.heartbeat("node-a", MEMBER_TTL, None).await.unwrap();
        assert_eq!(members(c).await.len(), 1);
    }

    /// Connecting to a Redis that is not there is an error that says so, not a panic or a
    /// hang.
    pub async fn connecting_to_an_unreachable_redis_is_an_error() {
        let mut server = RedisServer::start();
        server.stop();
        let connected = answers(
            "connect",
            RedisCoordinator::connect(&server.url(), NAMESPACE),
        )
        .await;
        let err = connected.expect_err("connecting to a stopped Redis must fail");
        assert!(err.is_unavailable(), "connect error: {err:?}");
    }

    /// With the append-only file on, a restarted Redis remembers the high-water mark and the
    /// fence: a tick claimed before the restart is not run again after it.
    pub async fn claims_survive_a_restart_with_appendonly() {
        let mut server = RedisServer::builder().appendonly(true).start();
        let c = connect(&server, NAMESPACE).await;
        let c = &*c;
        let before = expect_run(
            claim(c, request("durable", tick(5), "node-a")).await,
            "before",
        );
        assert!(release(c, &before, &record(Outcome::Succeeded, 1)).await);

        server.stop();
        server.restart();
        let deadline = Instant::now() + Duration::from_secs(20);
        let again = loop {
            match answers("claim", c.claim(&[request("durable", tick(5), "node-b")])).await {
                Ok(mut outcomes) => break outcomes.pop().unwrap(),
                Err(err) => {
                    assert!(Instant::now() < deadline, "no recovery after 20 s: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert_eq!(
            again,
            ClaimOutcome::Taken,
            "the tick was claimed before the restart"
        );
        let after = expect_run(
            claim(c, request("durable", tick(6), "node-b")).await,
            "after",
        );
        assert!(
            after.fence > before.fence,
            "fences keep increasing across the restart"
        );
        assert_eq!(history(c, "durable", 10).await.len(), 1);
    }

    /// All keys of a job share its hash tag: `ns:{job}`, `ns:{job}:lease`, `ns:{job}:runs`.
    pub async fn a_jobs_keys_share_its_hash_tag() {
        let server = RedisServer::start();
        let c = connect(&server, NAMESPACE).await;
        let c = &*c;
        let lease = expect_run(claim(c, request("report", tick(0), "node-a")).await, "run");
        expect_overlap(
            claim(c, request("report", tick(1), "node-b")).await,
            "overlap",
        );

        let state = "conformance:{report}";
        let lease_key = "conformance:{report}:lease";
        let runs = "conformance:{report}:runs";
        assert_eq!(
            keys(&server, "conformance:*").await,
            set(&[state, lease_key, runs])
        );
        assert_eq!(key_type(&server, state).await, "hash");
        assert_eq!(key_type(&server, lease_key).await, "string");
        assert_eq!(key_type(&server, runs).await, "stream");
        let mut con = server.connection().await;
        let holder: String = ::redis::cmd("GET")
            .arg(lease_key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(holder, lease.run_id(), "the lease holds the run id");
        let ttl_ms: i64 = ::redis::cmd("PTTL")
            .arg(lease_key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(
            ttl_ms > 0 && ttl_ms <= LONG_LEASE.as_millis() as i64,
            "lease PTTL {ttl_ms}"
        );
        let high: String = ::redis::cmd("HGET")
            .arg(state)
            .arg("tick")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(high, tick(1).to_string(), "the high-water mark");

        assert!(release(c, &lease, &record(Outcome::Succeeded, 1)).await);
        assert_eq!(keys(&server, "conformance:*").await, set(&[state, runs]));

        // Runs that may overlap have leases of their own, under the same hash tag.
        let a = expect_run(claim(c, request_allow("spread", tick(0), "n")).await, "a");
        let b = expect_run(claim(c, request_allow("spread", tick(1), "n")).await, "b");
        let spread = keys(&server, "conformance:*spread*").await;
        assert!(spread.len() >= 2, "{spread:?}");
        for key in &spread {
            assert!(key.starts_with("conformance:{spread}"), "{key}");
        }
        assert!(release(c, &a, &record(Outcome::Succeeded, 1)).await);
        assert!(release(c, &b, &record(Outcome::Succeeded, 1)).await);

        c.heartbeat("node-a", MEMBER_TTL, None).await.unwrap();
        assert_eq!(key_type(&server, "conformance:nodes").await, "zset");
        let all = keys(&server, "*").await;
        assert!(
            all.iter().all(|key| key.starts_with("conformance:")),
            "every key is in the namespace: {all:?}"
        );
    }

    /// Two fleets with different namespaces on one server share nothing.
    pub async fn namespaces_on_one_server_do_not_see_each_other() {
        let server = RedisServer::start();
        let alpha = connect(&server, "alpha").await;
        let beta = connect(&server, "beta").await;
        let (alpha, beta) = (&*alpha, &*beta);

        let a = expect_run(
            claim(alpha, request("report", tick(0), "node-a")).await,
            "alpha",
        );
        // The same tick of the same job is free in beta.
        let b = expect_run(
            claim(beta, request("report", tick(0), "node-b")).await,
            "beta",
        );
        assert_eq!(a.fence, b.fence, "fences are counted per namespace");
        // Beta's overlaps are about beta's runs only.
        let holder = expect_overlap(claim(beta, request("report", tick(1), "node-c")).await, "");
        assert_eq!(holder, b.run_id());
        // Neither sees the other's lease.
        assert!(!keep_alive(beta, &a, LONG_LEASE).await);
        assert!(!keep_alive(alpha, &b, LONG_LEASE).await);
        assert!(release(beta, &b, &record(Outcome::Succeeded, 1)).await);
        assert!(
            keep_alive(alpha, &a, LONG_LEASE).await,
            "beta's release left alpha's lease"
        );
        assert!(release(alpha, &a, &record(Outcome::Succeeded, 1)).await);

        assert_eq!(history(alpha, "report", 10).await.len(), 1);
        assert_eq!(history(beta, "report", 10).await.len(), 2);

        alpha.heartbeat("node-a", MEMBER_TTL, None).await.unwrap();
        assert_eq!(members(beta).await, vec![]);
        assert_eq!(members(alpha).await.len(), 1);

        let all = keys(&server, "*").await;
        assert!(
            all.iter()
                .all(|key| key.starts_with("alpha:") || key.starts_with("beta:")),
            "{all:?}"
        );
    }

    /// The membership has a version: every change (a join, a leave, a member forgotten, the
    /// keys lost) hands out a new one and reaches every coordinator at its next heartbeat,
    /// while a heartbeat whose version is current is answered without the member list.
    pub async fn membership_changes_reach_every_member_and_a_steady_heartbeat_carries_no_list() {
        let server = RedisServer::start();
        let alpha = connect(&server, NAMESPACE).await;
        let beta = connect(&server, NAMESPACE).await;
        let beat = |c: Arc<dyn Store>, node: &'static str, ttl: Duration| async move {
            c.heartbeat(node, ttl, None)
                .await
                .unwrap_or_else(|e| panic!("heartbeat of {node}: {e}"))
                .members
        };
        assert_eq!(beat(alpha.clone(), "node-a", MEMBER_TTL).await, ["node-a"]);
        assert_eq!(
            beat(beta.clone(), "node-b", MEMBER_TTL).await,
            ["node-a", "node-b"]
        );
        // Alpha learns of node-b although its own heartbeat changed nothing.
        assert_eq!(
            beat(alpha.clone(), "node-a", MEMBER_TTL).await,
            ["node-a", "node-b"]
        );

        // The steady answer, as the script gives it: the time and the version, no list.
        let nodes = format!("{NAMESPACE}:nodes");
        let version_key = format!("{nodes}:version{{{nodes}}}");
        let mut con = server.connection().await;
        let version: String = ::redis::cmd("GET")
            .arg(&version_key)
            .query_async(&mut con)
            .await
            .unwrap();
        let script = include_str!("../fourit/src/coordinator/redis/heartbeat.lua");
        let eval = |known: &str| {
            let mut cmd = ::redis::cmd("EVAL");
            cmd.arg(script)
                .arg(4)
                .arg(&nodes)
                .arg(&version_key)
                .arg(format!("{nodes}:manual{{{nodes}}}"))
                .arg(format!("{nodes}:clocks{{{nodes}}}"))
                .arg("node-a")
                .arg(MEMBER_TTL.as_millis() as u64)
                .arg(known.to_string())
                .arg("");
            cmd
        };
        let steady: Vec<String> = eval(&version).query_async(&mut con).await.unwrap();
        assert_eq!(
            steady,
            [
                steady[0].clone(),
                version.clone(),
                "0".to_string(),
                "0".to_string()
            ],
            "time, version, manual runs waiting and no member forgotten only: {steady:?}"
        );
        assert_eq!(
            steady[1], version,
            "a heartbeat of a known member changes nothing"
        );
        let stale: Vec<String> = eval("0").query_async(&mut con).await.unwrap();
        let listed: BTreeSet<String> = stale[4..].iter().cloned().collect();
        assert_eq!(
            listed,
            set(&["node-a", "node-b"]),
            "an old version gets the list"
        );

        // A leave reaches the others.
        beta.leave("node-b").await.unwrap();
        assert_eq!(beat(alpha.clone(), "node-a", MEMBER_TTL).await, ["node-a"]);
        // So does a member forgotten for silence, and its return.
        assert_eq!(
            beat(beta.clone(), "node-b", MEMBER_TTL).await,
            ["node-a", "node-b"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            beat(alpha.clone(), "node-a", Duration::from_millis(10)).await,
            ["node-a"]
        );
        assert_eq!(
            beat(beta.clone(), "node-b", MEMBER_TTL).await,
            ["node-a", "node-b"]
        );
        assert_eq!(
            beat(alpha.clone(), "node-a", MEMBER_TTL).await,
            ["node-a", "node-b"]
        );

        // Redis losing its data (a restart without persistence) is a change too, even if
        // the same members come back: no coordinator keeps a list Redis no longer has.
        let () = ::redis::cmd("FLUSHALL")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(beat(alpha.clone(), "node-a", MEMBER_TTL).await, ["node-a"]);
        let fresh: String = ::redis::cmd("GET")
            .arg(&version_key)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_ne!(fresh, version, "versions are never handed out twice");
        assert_eq!(
            beat(beta.clone(), "node-b", MEMBER_TTL).await,
            ["node-a", "node-b"]
        );
    }

    /// A pause is in Redis, not in a process: a coordinator connected later (a member
    /// restarted) sees it and decides the job's ticks as paused.
    pub async fn a_pause_lives_in_redis_and_every_coordinator_obeys_it() {
        let server = RedisServer::start();
        let alpha = connect(&server, NAMESPACE).await;
        alpha
            .pause("report", "ops@host", Some("maintenance"))
            .await
            .unwrap();
        drop(alpha);
        let beta = connect(&server, NAMESPACE).await;
        let pause = beta.pause_state("report").await.unwrap().expect("paused");
        assert_eq!(pause.note.as_deref(), Some("maintenance"));
        assert_eq!(
            claim(&*beta, request("report", tick(0), "node-b")).await,
            ClaimOutcome::Paused
        );
        assert!(beta.resume("report", "ops@host").await.unwrap().is_some());
        expect_run(
            claim(&*beta, request("report", tick(1), "node-b")).await,
            "resumed",
        );
    }
}

/// Cases only a SQL server has: a fresh database migrated by several processes at once, and
/// a connection cut while its claim waits on the server. Run as `postgres_only::<case>`.
mod postgres_only {
    use super::*;
    use fourit::coordinator::Coordinator as _;

    /// A connection of the test's own to `url`.
    async fn admin(url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        tokio::spawn(connection);
        client
    }

    /// Eight processes' worth of coordinators connecting at once to a database that has no
    /// schema yet: all of them connect (one migrates, the others wait on the lock and find
    /// it done) and a tick is still claimed once among them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn coordinators_connecting_at_once_to_a_new_database_all_migrate_it() {
        init_tracing();
        let url = fourit_tests::postgres_url();
        let database = format!(
            "fourit_race_{}_{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        );
        let server = admin(&url).await;
        server
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE: {e}"));
        let (base, _) = url
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("a URL with a database: {url}"));
        let fresh = format!("{base}/{database}");
        let connecting = (0..8).map(|_| {
            let fresh = fresh.clone();
            tokio::spawn(async move {
                fourit::coordinator::PostgresCoordinator::connect(&fresh, "race").await
            })
        });
        let mut coordinators = Vec::new();
        for joined in join_all(connecting).await {
            let coordinator = joined
                .unwrap_or_else(|e| panic!("a connecting task: {e}"))
                .unwrap_or_else(|e| panic!("connecting to a new database at once: {e}"));
            coordinators.push(Arc::new(coordinator));
        }
        let claims = coordinators.iter().enumerate().map(|(i, coordinator)| {
            let coordinator = coordinator.clone();
            tokio::spawn(async move {
                coordinator
                    .claim(&[request("raced", tick(1), &format!("node-{i}"))])
                    .await
            })
        });
        let mut ran = 0;
        for joined in join_all(claims).await {
            let outcomes = joined
                .unwrap_or_else(|e| panic!("a claiming task: {e}"))
                .unwrap_or_else(|e| panic!("claim: {e}"));
            ran += outcomes
                .iter()
                .filter(|outcome| matches!(outcome, ClaimOutcome::Run(_)))
                .count();
        }
        assert_eq!(ran, 1, "one of eight claimers ran the tick");
        let version = admin(&fresh)
            .await
            .query_one("SELECT count(*), max(version) FROM fourit_meta", &[])
            .await
            .unwrap_or_else(|e| panic!("fourit_meta: {e}"));
        assert_eq!(version.get::<_, i64>(0), 1, "one version row");
        drop(coordinators);
        let _ = server
            .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
            .await;
    }

    /// Awaits every handle, in order.
    async fn join_all<T>(
        handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
    ) -> Vec<Result<T, tokio::task::JoinError>> {
        let mut answers = Vec::new();
        for handle in handles {
            answers.push(handle.await);
        }
        answers
    }

    /// A claim waiting on the server (the job's row locked by another transaction) whose
    /// connection the server ends: the claim fails, nothing of it is committed, and the same
    /// claim sent again runs the tick, once, with the next fence.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_cut_while_its_claim_waits_commits_nothing_and_the_claim_again_runs() {
        init_tracing();
        let url = fourit_tests::postgres_url();
        let namespace = format!(
            "cut-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        );
        let session = namespace.clone();
        let coordinator = Arc::new(
            fourit::coordinator::PostgresCoordinator::connect(
                &fourit_tests::postgres_url_as(&session),
                &namespace,
            )
            .await
            .unwrap_or_else(|e| panic!("connecting: {e}")),
        );
        let other = fourit::coordinator::PostgresCoordinator::connect(&url, &namespace)
            .await
            .unwrap_or_else(|e| panic!("connecting: {e}"));
        // A first run, so the job has a row and a fence.
        let first = match &coordinator
            .claim(&[request("cut", tick(1), "node-a")])
            .await
            .unwrap_or_else(|e| panic!("claim: {e}"))[..]
        {
            [ClaimOutcome::Run(lease)] => lease.clone(),
            other => panic!("the first tick runs: {other:?}"),
        };
        assert!(
            coordinator
                .release(&first, &record(Outcome::Succeeded, 5))
                .await
                .unwrap_or_else(|e| panic!("release: {e}"))
        );
        let mut locker = admin(&url).await;
        let lock = locker
            .transaction()
            .await
            .unwrap_or_else(|e| panic!("BEGIN: {e}"));
        lock.query(
            "SELECT 1 FROM fourit_jobs WHERE ns = $1 AND job = 'cut' FOR UPDATE",
            &[&namespace],
        )
        .await
        .unwrap_or_else(|e| panic!("locking the job's row: {e}"));
        let second = request("cut", tick(2), "node-a");
        let waiting = {
            let coordinator = coordinator.clone();
            let second = second.clone();
            tokio::spawn(async move { coordinator.claim(&[second]).await })
        };
        // The event: the claim's session waits on the row lock.
        let watcher = admin(&url).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid: i32 = loop {
            let rows = watcher
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = $1
                     AND wait_event_type = 'Lock'",
                    &[&session],
                )
                .await
                .unwrap_or_else(|e| panic!("pg_stat_activity: {e}"));
            if let Some(row) = rows.first() {
                break row.get(0);
            }
            assert!(
                Instant::now() < deadline,
                "the claim never waited on the lock"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        watcher
            .query("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap_or_else(|e| panic!("pg_terminate_backend: {e}"));
        let cut = waiting
            .await
            .unwrap_or_else(|e| panic!("the claiming task: {e}"));
        assert!(cut.is_err(), "the cut claim fails: {cut:?}");
        lock.rollback()
            .await
            .unwrap_or_else(|e| panic!("ROLLBACK: {e}"));
        // Nothing of the cut claim was committed: another member is refused nothing by it,
        // but the same claim (its id) sent again gets the tick first here.
        let again = coordinator
            .claim(&[second])
            .await
            .unwrap_or_else(|e| panic!("the claim sent again: {e}"));
        match &again[..] {
            [ClaimOutcome::Run(lease)] => assert_eq!(
                lease.fence,
                FenceToken(first.fence.get() + 1),
                "the next fence: the cut claim took none"
            ),
            other => panic!("the claim sent again runs the tick: {other:?}"),
        }
        let late = other
            .claim(&[request("cut", tick(2), "node-b")])
            .await
            .unwrap_or_else(|e| panic!("claim: {e}"));
        assert!(
            matches!(late[..], [ClaimOutcome::Taken]),
            "the tick ran once: {late:?}"
        );
    }
}
