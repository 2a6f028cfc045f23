//! The rule book against the README's promises, one rule at a time.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;

use super::super::{
    ClaimOutcome, ClaimRequest, HistoryEntry, Lease, ManualOutcome, ManualState, Outcome, RunRecord,
};
use super::{JobRecord, Now, Writes, claim, lease, manual, members, pause};
use crate::Schedule;
use crate::job::Overlap;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const TTL: Duration = Duration::from_secs(30);

fn request(node: &str, tick_ms: i64, claim_id: u64) -> ClaimRequest {
    ClaimRequest {
        job: Arc::from("report"),
        tick_ms,
        node: Arc::from(node),
        lease_ttl: TTL,
        overlap: Overlap::Skip,
        preferred: None,
        handoff: Duration::from_millis(500),
        claim_id,
        schedule: None,
    }
}

fn run(outcome: &ClaimOutcome) -> Lease {
    match outcome {
        ClaimOutcome::Run(lease) | ClaimOutcome::Resumed(lease) => lease.clone(),
        other => panic!("expected a run, got {other:?}"),
    }
}

fn succeeded() -> RunRecord {
    RunRecord {
        outcome: Outcome::Succeeded,
        started: DateTime::from_timestamp_millis(T0).unwrap_or_default(),
        duration: Duration::from_millis(20),
    }
}

fn outcomes(history: &[HistoryEntry]) -> Vec<&str> {
    history.iter().map(|entry| entry.outcome.as_str()).collect()
}

#[test]
fn each_tick_is_claimed_once_and_an_older_one_never_again() {
    let mut job = JobRecord::default();
    let (first, _) = claim::claim(&mut job, &request("a", T0, 1), Now::at(T0));
    assert_eq!(run(&first).fence.get(), 1);
    assert_eq!(job.mark, Some(T0));
    let (second, writes) = claim::claim(&mut job, &request("b", T0, 2), Now::at(T0));
    assert_eq!(second, ClaimOutcome::Taken);
    assert_eq!(writes, Writes::none());
    let (older, _) = claim::claim(&mut job, &request("b", T0 - 1_000, 3), Now::at(T0));
    assert_eq!(older, ClaimOutcome::Taken);
}

#[test]
fn only_the_same_claim_sent_again_resumes_its_run_until_it_is_released() {
    let mut job = JobRecord::default();
    let first = run(&claim::claim(&mut job, &request("a", T0, 7), Now::at(T0)).0);
    // A restart of the same node is another claim: taken.
    let (other, _) = claim::claim(&mut job, &request("a", T0, 8), Now::at(T0 + 10));
    assert_eq!(other, ClaimOutcome::Taken);
    let (again, writes) = claim::claim(&mut job, &request("a", T0, 7), Now::at(T0 + 10));
    assert_eq!(again, ClaimOutcome::Resumed(first.clone()));
    assert!(writes.history.is_empty());
    lease::release(&mut job, &first, &succeeded(), Now::at(T0 + 50));
    let (late, _) = claim::claim(&mut job, &request("a", T0, 7), Now::at(T0 + 60));
    assert_eq!(late, ClaimOutcome::Taken);
}

#[test]
fn a_resend_takes_its_expired_lease_again_unless_another_run_holds_it() {
    let mut job = JobRecord::default();
    let first = run(&claim::claim(&mut job, &request("a", T0, 7), Now::at(T0)).0);
    let expired = T0 + 31_000;
    let (again, writes) = claim::claim(&mut job, &request("a", T0, 7), Now::at(expired));
    assert_eq!(again, ClaimOutcome::Resumed(first.clone()));
    assert!(writes.changed);
    assert_eq!(job.holder(Now::at(expired)), Some(first.run_id().as_str()));
    // Once a manual run took the expired lease, the resend is refused.
    let mut job = JobRecord::default();
    run(&claim::claim(&mut job, &request("a", T0, 7), Now::at(T0)).0);
    let asked = manual::request("report", "m1".into(), "ops", false, None, Now::at(expired));
    let mut stands = ManualState::Pending;
    let at = Now::at(expired);
    let (taken, _) = manual::claim(&mut job, &asked, &mut stands, "b", TTL, Overlap::Skip, at);
    assert!(matches!(taken, ManualOutcome::Run(_)));
    let (again, _) = claim::claim(&mut job, &request("a", T0, 7), Now::at(expired + 1));
    assert_eq!(again, ClaimOutcome::Taken);
}

#[test]
fn a_resend_after_a_manual_run_started_is_taken_never_resumed_under_its_fence() {
    let mut job = JobRecord::default();
    run(&claim::claim(&mut job, &request("a", T0, 7), Now::at(T0)).0);
    let asked = manual::request("report", "m1".into(), "ops", true, None, Now::at(T0 + 1));
    let mut stands = ManualState::Pending;
    let at = Now::at(T0 + 1);
    let (taken, _) = manual::claim(&mut job, &asked, &mut stands, "b", TTL, Overlap::Skip, at);
    assert!(matches!(taken, ManualOutcome::Run(lease) if lease.fence.get() == 2));
    // The claim's lease expired; its resend is not resumed with the manual run's fence.
    let (again, _) = claim::claim(&mut job, &request("a", T0, 7), Now::at(T0 + 31_000));
    assert_eq!(again, ClaimOutcome::Taken);
}

#[test]
fn a_tick_in_the_coordinators_future_is_refused_and_records_nothing() {
    let mut job = JobRecord::default();
    let (early, writes) = claim::claim(&mut job, &request("a", T0 + 6, 1), Now::at(T0));
    assert_eq!(early, ClaimOutcome::Early { now_ms: T0 });
    assert_eq!(
        (job.clone(), writes),
        (JobRecord::default(), Writes::none())
    );
    // Within the tolerance it is claimed.
    let (on_time, _) = claim::claim(&mut job, &request("a", T0 + 5, 1), Now::at(T0));
    run(&on_time);
}

#[test]
fn others_wait_out_the_preferred_members_handoff_and_it_is_admitted_at_once() {
    let preferred = |node: &str, id| ClaimRequest {
        preferred: Some(Arc::from("a")),
        ..request(node, T0, id)
    };
    let mut job = JobRecord::default();
    let (wait, writes) = claim::claim(&mut job, &preferred("b", 1), Now::at(T0 + 100));
    let retry = ClaimOutcome::Retry {
        at_ms: T0 + 500,
        now_ms: T0 + 100,
    };
    assert_eq!((wait, writes), (retry, Writes::none()));
    assert_eq!(job.mark, None);
    let (after, _) = claim::claim(&mut job, &preferred("b", 1), Now::at(T0 + 500));
    assert_eq!(run(&after).node.as_ref(), "b");
    assert!(claim::notifies(&preferred("b", 1), &after));
    let mut job = JobRecord::default();
    let (own, _) = claim::claim(&mut job, &preferred("a", 2), Now::at(T0));
    assert_eq!(run(&own).node.as_ref(), "a");
    assert!(!claim::notifies(&request("a", T0, 3), &own));
}

#[test]
fn a_held_lease_skips_the_next_tick_as_an_overlap_unless_overlap_is_allowed() {
    let mut job = JobRecord::default();
    let first = run(&claim::claim(&mut job, &request("a", T0, 1), Now::at(T0)).0);
    let (skipped, writes) =
        claim::claim(&mut job, &request("b", T0 + 1_000, 2), Now::at(T0 + 1_000));
    assert_eq!(
        skipped,
        ClaimOutcome::Overlap {
            holder: first.run_id()
        }
    );
    assert_eq!(job.mark, Some(T0 + 1_000));
    assert_eq!(
        writes.history[0].detail.as_deref(),
        Some(first.run_id().as_str())
    );
    let allow = ClaimRequest {
        overlap: Overlap::Allow,
        ..request("b", T0 + 2_000, 3)
    };
    let second = run(&claim::claim(&mut job, &allow, Now::at(T0 + 2_000)).0);
    assert_eq!(second.fence.get(), 2);
    assert!(job.run_leases.contains_key(&super::Slot::Tick(T0 + 2_000)));
    // Its own lease: the job's is still the first run's.
    assert_eq!(
        job.holder(Now::at(T0 + 2_000)),
        Some(first.run_id().as_str())
    );
}

#[test]
fn a_paused_job_decides_its_ticks_as_paused_and_its_resume_counts_them() {
    let mut job = JobRecord::default();
    pause::pause(&mut job, "ops", Some("deploy"), Now::at(T0));
    let (first, writes) = claim::claim(&mut job, &request("a", T0, 1), Now::at(T0));
    assert_eq!(first, ClaimOutcome::Paused);
    assert_eq!(
        writes.history[0].detail.as_deref(),
        Some("paused by ops: deploy")
    );
    let (second, writes) =
        claim::claim(&mut job, &request("a", T0 + 1_000, 2), Now::at(T0 + 1_000));
    assert_eq!((second, writes.history.len()), (ClaimOutcome::Paused, 0));
    // Pausing again replaces who and why, and keeps the count.
    pause::pause(&mut job, "lead", None, Now::at(T0 + 1_500));
    let (ended, writes) = pause::resume(&mut job, "ops");
    let ended = ended.unwrap_or_else(|| panic!("the job was paused"));
    assert_eq!(
        (ended.by.as_str(), ended.ticks, ended.note),
        ("lead", 2, None)
    );
    assert_eq!(
        writes.history[0].detail.as_deref(),
        Some(&*format!(
            "2 ticks paused, {T0} to {} (ms); paused by lead, resumed by ops",
            T0 + 1_000
        ))
    );
    assert_eq!(pause::resume(&mut job, "ops").0, None);
    let (after, _) = claim::claim(&mut job, &request("a", T0 + 2_000, 3), Now::at(T0 + 2_000));
    run(&after);
}

#[test]
fn the_claim_that_moves_the_mark_over_scheduled_ticks_records_them_as_missed() {
    let schedule = Schedule::parse("* * * * * *").unwrap_or_else(|err| panic!("{err}"));
    let every_second = |tick, id| ClaimRequest {
        schedule: Some(Arc::new(schedule.clone())),
        ..request("a", tick, id)
    };
    let mut job = JobRecord::default();
    let first = run(&claim::claim(&mut job, &every_second(T0, 1), Now::at(T0)).0);
    lease::release(&mut job, &first, &succeeded(), Now::at(T0 + 10));
    let (late, writes) = claim::claim(&mut job, &every_second(T0 + 5_000, 2), Now::at(T0 + 5_000));
    run(&late);
    let missed = writes
        .missed
        .unwrap_or_else(|| panic!("4 ticks were missed"));
    assert_eq!(
        (missed.count, missed.first_ms, missed.last_ms),
        (4, T0 + 1_000, T0 + 4_000)
    );
    assert_eq!(outcomes(&writes.history), ["missed"]);
    assert_eq!(
        writes.history[0].detail.as_deref(),
        Some("4 ticks missed, 2026-01-01T00:00:01.000Z to 2026-01-01T00:00:04.000Z")
    );
}

#[test]
fn only_the_run_holding_the_lease_keeps_it_alive_or_deletes_it() {
    let mut job = JobRecord::default();
    let first = run(&claim::claim(&mut job, &request("a", T0, 1), Now::at(T0)).0);
    assert!(lease::keep_alive(
        &mut job,
        &first,
        TTL,
        Now::at(T0 + 20_000)
    ));
    // Extended: still held past the first TTL.
    assert_eq!(
        job.holder(Now::at(T0 + 40_000)),
        Some(first.run_id().as_str())
    );
    let stranger = Lease {
        node: Arc::from("b"),
        ..first.clone()
    };
    assert!(!lease::keep_alive(
        &mut job,
        &stranger,
        TTL,
        Now::at(T0 + 21_000)
    ));
    let (held, writes) = lease::release(&mut job, &stranger, &succeeded(), Now::at(T0 + 21_000));
    assert!(!held);
    assert_eq!(outcomes(&writes.history), ["succeeded"]);
    assert!(!lease::keep_alive(
        &mut job,
        &first,
        TTL,
        Now::at(T0 + 51_000)
    ));
}

#[test]
fn a_release_sent_again_is_recorded_once_and_a_stale_run_does_not_touch_the_latest() {
    let mut job = JobRecord::default();
    let first = run(&claim::claim(&mut job, &request("a", T0, 1), Now::at(T0)).0);
    let (held, writes) = lease::release(&mut job, &first, &succeeded(), Now::at(T0 + 20));
    assert!(held);
    assert_eq!(writes.history[0].fence, Some(1));
    assert_eq!(job.last.finished_ms, Some(T0 + 20));
    let (again, writes) = lease::release(&mut job, &first, &succeeded(), Now::at(T0 + 30));
    assert!(again);
    assert_eq!(writes, Writes::none());
    // Still recognised once a later run started.
    run(&claim::claim(&mut job, &request("b", T0 + 1_000, 2), Now::at(T0 + 1_000)).0);
    let (late, writes) = lease::release(&mut job, &first, &succeeded(), Now::at(T0 + 1_010));
    assert!(late);
    assert_eq!(writes, Writes::none());
    // A run whose lease expired, released after a newer run started: its outcome goes to
    // history alone.
    let mut job = JobRecord::default();
    let old = run(&claim::claim(&mut job, &request("a", T0, 1), Now::at(T0)).0);
    let late = T0 + 40_000;
    run(&claim::claim(&mut job, &request("b", late, 2), Now::at(late)).0);
    let failed = RunRecord {
        outcome: Outcome::Failed("boom".into()),
        ..succeeded()
    };
    let (held, writes) = lease::release(&mut job, &old, &failed, Now::at(late + 1));
    assert!(!held);
    assert_eq!(writes.history[0].detail.as_deref(), Some("boom"));
    assert_eq!(job.last.outcome.as_deref(), Some("running"));
}

#[test]
fn a_manual_run_is_taken_once_with_a_fence_of_its_own_and_never_moves_the_mark() {
    let mut job = JobRecord::default();
    let asked = manual::request("report", "m1".into(), "o\tps", false, None, Now::at(T0));
    assert_eq!(asked.by, "o ps");
    let mut stands = ManualState::Pending;
    let now = Now::at(T0 + 5);
    let (taken, writes) =
        manual::claim(&mut job, &asked, &mut stands, "a", TTL, Overlap::Skip, now);
    assert!(matches!(&taken, ManualOutcome::Run(lease) if lease.fence.get() == 1));
    assert_eq!(writes.history[0].detail.as_deref(), Some("asked by o ps"));
    assert_eq!(
        stands,
        ManualState::Started {
            node: "a".into(),
            fence: 1
        }
    );
    assert_eq!(job.mark, None);
    let (again, _) = manual::claim(&mut job, &asked, &mut stands, "b", TTL, Overlap::Skip, now);
    assert_eq!(again, ManualOutcome::Taken);
    // Not forced while the lease is held: skipped. Forced: a lease of its own.
    let holder = job.holder(now).map(str::to_string).unwrap_or_default();
    let second = manual::request("report", "m2".into(), "ops", false, None, now);
    let mut stands = ManualState::Pending;
    let (skipped, _) = manual::claim(&mut job, &second, &mut stands, "b", TTL, Overlap::Skip, now);
    assert_eq!(
        skipped,
        ManualOutcome::Overlap {
            holder: holder.clone()
        }
    );
    assert_eq!(stands, ManualState::Skipped { holder });
    let forced = manual::request("report", "m3".into(), "ops", true, None, now);
    let mut stands = ManualState::Pending;
    let (own, _) = manual::claim(&mut job, &forced, &mut stands, "b", TTL, Overlap::Skip, now);
    assert!(matches!(own, ManualOutcome::Run(lease) if lease.overlap == Overlap::Allow));
}

#[test]
fn each_manual_request_of_a_job_has_a_tick_of_its_own() {
    let now = Now::at(T0);
    let first = manual::request("report", "m1".into(), "ops", true, None, now);
    assert_eq!(first.requested_ms, T0);
    let second = manual::request("report", "m2".into(), "ops", true, Some(T0), now);
    assert_eq!(second.requested_ms, T0 + 1);
    // Two forced runs of one millisecond: each keeps its own lease.
    let mut job = JobRecord::default();
    let (mut one, mut two) = (ManualState::Pending, ManualState::Pending);
    let (a, _) = manual::claim(&mut job, &first, &mut one, "a", TTL, Overlap::Skip, now);
    let (b, _) = manual::claim(&mut job, &second, &mut two, "b", TTL, Overlap::Skip, now);
    let (ManualOutcome::Run(a), ManualOutcome::Run(b)) = (a, b) else {
        panic!("both forced runs start");
    };
    assert!(lease::keep_alive(&mut job, &a, TTL, now));
    assert!(lease::keep_alive(&mut job, &b, TTL, now));
    let later = manual::request(
        "report",
        "m3".into(),
        "ops",
        true,
        Some(T0 + 1),
        Now::at(T0 + 9),
    );
    assert_eq!(later.requested_ms, T0 + 9);
}

#[test]
fn a_forced_manual_run_on_a_scheduled_ticks_millisecond_keeps_its_own_lease() {
    let mut job = JobRecord::default();
    let now = Now::at(T0);
    let asked = manual::request("report", "m1".into(), "ops", true, None, now);
    let mut stands = ManualState::Pending;
    let (taken, _) = manual::claim(&mut job, &asked, &mut stands, "a", TTL, Overlap::Skip, now);
    let ManualOutcome::Run(manual_run) = taken else {
        panic!("the forced run starts");
    };
    let allow = ClaimRequest {
        overlap: Overlap::Allow,
        ..request("b", T0, 2)
    };
    let scheduled = run(&claim::claim(&mut job, &allow, now).0);
    assert!(lease::keep_alive(&mut job, &manual_run, TTL, now));
    assert!(lease::keep_alive(&mut job, &scheduled, TTL, now));
}

#[test]
fn a_heartbeat_forgets_the_silent_members_and_keeps_the_last_clock_offset() {
    let mut fleet = std::collections::BTreeMap::new();
    let stale = Duration::from_secs(10);
    members::heartbeat(&mut fleet, "a", stale, Some(250), Now::at(T0));
    members::heartbeat(&mut fleet, "b", stale, None, Now::at(T0 + 5_000));
    let evicted = members::heartbeat(&mut fleet, "b", stale, None, Now::at(T0 + 10_000));
    assert!(
        evicted.is_empty(),
        "exactly the timeout old is not silent yet"
    );
    members::heartbeat(&mut fleet, "a", stale, None, Now::at(T0 + 10_000));
    assert_eq!(fleet.get("a").and_then(|m| m.clock_offset_us), Some(250));
    let evicted = members::heartbeat(&mut fleet, "c", stale, None, Now::at(T0 + 20_001));
    assert_eq!(evicted, ["a", "b"]);
    assert_eq!(fleet.keys().collect::<Vec<_>>(), ["c"]);
}

fn definition(schedule: &str) -> super::super::JobDefinition {
    super::super::JobDefinition {
        name: "report".into(),
        schedule: schedule.into(),
        timezone: "UTC".into(),
        overlap: Overlap::Skip,
        timeout: None,
        grace: None,
        location: "src/jobs.rs:1".into(),
        version: None,
    }
}

fn nodes(registrations: &members::JobRegistrations) -> Vec<&str> {
    registrations.keys().map(String::as_str).collect()
}

#[test]
fn registrations_of_members_gone_are_pruned_when_a_live_member_registers_the_job() {
    let mut job = members::JobRegistrations::new();
    let nobody = |_: &str| false;
    // Three generations of processes, each restart a new node id.
    members::register(
        &mut job,
        "a1",
        &definition("* * * * * *"),
        &nobody,
        Now::at(T0),
    );
    members::register(
        &mut job,
        "a2",
        &definition("* * * * * *"),
        &nobody,
        Now::at(T0 + 1),
    );
    let live = |node: &str| node == "b";
    let answer = members::register(
        &mut job,
        "b",
        &definition("*/2 * * * * *"),
        &live,
        Now::at(T0 + 2),
    );
    // a1 went at a2's registration (no live registrant: a2, the latest, was kept), a2 at b's.
    assert_eq!(
        answer
            .iter()
            .map(|(node, _)| node.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(nodes(&job), ["b"]);
    // The registering member counts as live before its first heartbeat.
    let live = |node: &str| node == "b";
    members::register(
        &mut job,
        "c",
        &definition("* * * * * *"),
        &live,
        Now::at(T0 + 3),
    );
    assert_eq!(nodes(&job), ["b", "c"]);
}

#[test]
fn a_job_no_live_member_registers_keeps_exactly_its_last_registration() {
    let mut job = members::JobRegistrations::new();
    let all = |_: &str| true;
    members::register(
        &mut job,
        "b",
        &definition("*/2 * * * * *"),
        &all,
        Now::at(T0 + 5),
    );
    members::register(
        &mut job,
        "a",
        &definition("*/3 * * * * *"),
        &all,
        Now::at(T0 + 9),
    );
    members::register(
        &mut job,
        "c",
        &definition("*/4 * * * * *"),
        &all,
        Now::at(T0 + 9),
    );
    // All gone at once (killed, forgotten by one heartbeat): the latest registration stays,
    // equal times going to the greatest node id; its definition is the job's last.
    let gone = members::prune(&mut job, &|_| false);
    assert_eq!(gone, ["a", "b"]);
    assert_eq!(nodes(&job), ["c"]);
    assert_eq!(job["c"].def.schedule, "*/4 * * * * *");
    // Pruning again changes nothing: one registration is left, and it stays.
    assert!(members::prune(&mut job, &|_| false).is_empty());
    assert_eq!(nodes(&job), ["c"]);
}

#[test]
fn the_last_registrant_to_go_keeps_the_job() {
    let mut job = members::JobRegistrations::new();
    let all = |_: &str| true;
    members::register(&mut job, "a", &definition("* * * * * *"), &all, Now::at(T0));
    members::register(
        &mut job,
        "b",
        &definition("* * * * * *"),
        &all,
        Now::at(T0 + 1),
    );
    // b leaves while a still runs the job: b's registration goes.
    assert_eq!(members::prune(&mut job, &|node| node == "a"), ["b"]);
    // Then a leaves: it is the job's last registrant, and stays though b registered later.
    assert!(members::prune(&mut job, &|_| false).is_empty());
    assert_eq!(nodes(&job), ["a"]);
}

#[test]
fn a_registration_without_a_time_is_older_than_every_timed_one() {
    let mut job = members::JobRegistrations::new();
    for (node, at_ms) in [("z", None), ("a", Some(T0))] {
        job.insert(
            node.into(),
            members::Registered {
                def: definition("* * * * * *"),
                at_ms,
            },
        );
    }
    assert_eq!(members::prune(&mut job, &|_| false), ["z"]);
    assert_eq!(nodes(&job), ["a"]);
    // A `v1` line (before registrations had a time) reads as one without a time; a `v2` line
    // carries it.
    let v1 = "v1\t* * * * * *\tUTC\tskip\t-\t-\tsrc/jobs.rs:1\t-";
    assert_eq!(
        members::Registered::parse("report", v1),
        Some(members::Registered {
            def: definition("* * * * * *"),
            at_ms: None
        })
    );
    let v2 = definition("*/5 * * * * *").to_line_at(T0);
    assert_eq!(
        members::Registered::parse("report", &v2),
        Some(members::Registered {
            def: definition("*/5 * * * * *"),
            at_ms: Some(T0)
        })
    );
}

#[test]
fn pruning_a_catalog_prunes_every_job_and_names_what_went() {
    let mut catalog = std::collections::BTreeMap::new();
    for job in ["j1", "j2"] {
        let registrations: &mut members::JobRegistrations =
            catalog.entry(job.to_string()).or_default();
        for (node, at) in [("gone", 1), ("live", 2)] {
            registrations.insert(
                node.into(),
                members::Registered {
                    def: definition("* * * * * *"),
                    at_ms: Some(T0 + at),
                },
            );
        }
    }
    if let Some(j2) = catalog.get_mut("j2") {
        j2.remove("live");
    }
    let gone = members::prune_all(&mut catalog, &|node| node == "live");
    assert_eq!(gone, [("j1".to_string(), "gone".to_string())]);
    assert_eq!(
        nodes(&catalog["j2"]),
        ["gone"],
        "orphaned, with its one registration"
    );
}
