//! Which process is preferred to run a tick: rendezvous hashing with bounded loads.
//!
//! Every process computes the same answer from the same inputs (the job names due at a tick,
//! the tick, the live members), so they agree without talking. For each job, members are
//! ranked by [`score`] (highest first: rendezvous, or highest-random-weight, hashing); jobs are
//! then placed one by one, in an order that is itself shuffled per tick, on their
//! highest-ranked member that holds fewer than `ceil(jobs / members)` of this tick's jobs. So
//! the jobs due at one instant are spread evenly, and a member joining or leaving moves few
//! placements. Views of the membership that disagree for a moment cost a handoff delay or a
//! race for the claim, never a double run: the claim script still admits one claim per tick.

use std::sync::Arc;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The fixed 64-bit hash every fourit version uses to rank `member` for `job` at `tick_ms`:
/// FNV-1a over the bytes of `job`, a zero byte, `tick_ms` as 8 big-endian bytes, a zero byte
/// and `member`, then the SplitMix64 finaliser (`x ^= x >> 30; x *= 0xbf58476d1ce4e5b9;
/// x ^= x >> 27; x *= 0x94d049bb133111eb; x ^= x >> 31`). Changing it would make processes of
/// different versions disagree on who is preferred.
pub fn score(job: &str, tick_ms: i64, member: &str) -> u64 {
    let mut hash = FNV_OFFSET;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    };
    feed(job.as_bytes());
    feed(&[0]);
    feed(&tick_ms.to_be_bytes());
    feed(&[0]);
    feed(member.as_bytes());
    let mut x = hash;
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    x
}

/// The preferred member for each of `jobs` (all due at `tick_ms`), in the order given, or
/// `None` for every job when there are no members.
pub fn preferred(jobs: &[&str], tick_ms: i64, members: &[Arc<str>]) -> Vec<Option<Arc<str>>> {
    if members.is_empty() {
        return vec![None; jobs.len()];
    }
    let cap = jobs.len().div_ceil(members.len());
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&index| (score(jobs[index], tick_ms, ""), jobs[index]));
    let mut load = vec![0usize; members.len()];
    let mut placed = vec![None; jobs.len()];
    let mut ranking: Vec<(u64, usize)> = Vec::with_capacity(members.len());
    for index in order {
        ranking.clear();
        ranking.extend(
            members
                .iter()
                .enumerate()
                .map(|(m, member)| (score(jobs[index], tick_ms, member), m)),
        );
        // Highest score first; equal scores (practically never) by member order.
        ranking.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some(&(_, m)) = ranking.iter().find(|(_, m)| load[*m] < cap) {
            load[m] += 1;
            placed[index] = Some(members[m].clone());
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::{preferred, score};

    fn members(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn the_hash_is_fixed_across_versions() {
        // Pinned values, computed independently from the documented algorithm: a change here
        // breaks agreement between fourit versions in one fleet.
        assert_eq!(score("", 0, ""), 0xc7e8_48ec_2c2e_8688);
        assert_eq!(
            score("report", 1_795_860_000_000, "node-a"),
            0xab2c_241d_8284_567d
        );
    }

    #[test]
    fn jobs_due_together_are_spread_evenly() {
        let nodes = members(&["a", "b", "c", "d"]);
        let jobs: Vec<String> = (0..4).map(|i| format!("job-{i}")).collect();
        let jobs: Vec<&str> = jobs.iter().map(String::as_str).collect();
        for tick in 0..200 {
            let placed = preferred(&jobs, tick * 1000, &nodes);
            let mut load: HashMap<Arc<str>, usize> = HashMap::new();
            for member in placed.into_iter().flatten() {
                *load.entry(member).or_default() += 1;
            }
            assert_eq!(load.len(), 4, "tick {tick}: {load:?}");
            assert!(load.values().all(|&n| n == 1));
        }
    }

    #[test]
    fn a_lone_job_visits_every_member_about_equally() {
        let nodes = members(&["a", "b", "c", "d"]);
        let mut count: HashMap<Arc<str>, usize> = HashMap::new();
        for tick in 0..4000 {
            if let Some(Some(member)) = preferred(&["solo"], tick * 1000, &nodes).pop() {
                *count.entry(member).or_default() += 1;
            }
        }
        for (member, n) in count {
            assert!((900..=1100).contains(&n), "{member}: {n} of 4000");
        }
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_placements() {
        let all = members(&["a", "b", "c", "d"]);
        let without_d = members(&["a", "b", "c"]);
        let mut moved = 0;
        let ticks = 2000;
        for tick in 0..ticks {
            let before = preferred(&["solo"], tick * 1000, &all);
            let after = preferred(&["solo"], tick * 1000, &without_d);
            if before != after {
                moved += 1;
                assert_eq!(before[0].as_deref(), Some("d"), "only d's ticks move");
            }
        }
        assert!((400..=600).contains(&moved), "{moved} of {ticks} moved");
    }

    #[test]
    fn no_members_means_no_preference() {
        assert_eq!(preferred(&["a", "b"], 0, &[]), vec![None, None]);
    }
}
