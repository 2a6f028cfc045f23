//! The SQLite tables as the rules see them: a job's row and its lease rows loaded as one
//! [`JobRecord`] and stored back as what changed, history appended and capped, members
//! loaded and written, manual requests, registrations.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};

use super::super::rules::members::{JobRegistrations, Registered, prune_all};
use super::super::rules::{Held, JobRecord, LastRun, MemberRecord};
use super::super::sql::{parse_slot, slot, unsigned};
use super::super::{
    HISTORY_LEN, HistoryEntry, JobDefinition, ManualRequest, ManualState, PauseState,
};

/// One transaction on the namespace's rows.
pub(super) struct Tx<'a> {
    pub(super) tx: Transaction<'a>,
    pub(super) ns: &'a str,
}

/// A stored count as SQLite's signed integer.
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Tx<'_> {
    /// The job's record: its row (none yet: the empty record) and its leases.
    pub(super) fn load(&self, job: &str) -> rusqlite::Result<JobRecord> {
        let mut record = self
            .tx
            .query_row(
                "SELECT tick, fence, node, claim, started, finished, outcome, error,
                        paused, paused_by, paused_note, paused_at, paused_ticks, paused_first,
                        paused_last, released
                 FROM fourit_jobs WHERE ns = ?1 AND job = ?2",
                params![self.ns, job],
                |r| {
                    let paused: i64 = r.get(8)?;
                    let pause = if paused == 1 {
                        Some(PauseState {
                            by: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                            note: r.get::<_, Option<String>>(10)?.filter(|n| !n.is_empty()),
                            since_ms: r.get::<_, Option<i64>>(11)?.unwrap_or_default(),
                            ticks: r.get::<_, i64>(12)?.max(0).unsigned_abs(),
                            first_tick_ms: r.get(13)?,
                            last_tick_ms: r.get(14)?,
                        })
                    } else {
                        None
                    };
                    Ok(JobRecord {
                        mark: r.get(0)?,
                        fence: r.get::<_, i64>(1)?.max(0).unsigned_abs(),
                        claim: r
                            .get::<_, Option<String>>(3)?
                            .and_then(|id| id.parse().ok()),
                        released: r.get(15)?,
                        lease: None,
                        run_leases: BTreeMap::new(),
                        last: LastRun {
                            node: r.get(2)?,
                            started_ms: r.get(4)?,
                            finished_ms: r.get(5)?,
                            outcome: r.get(6)?,
                            error: r.get(7)?,
                        },
                        pause,
                    })
                },
            )
            .optional()?
            .unwrap_or_default();
        let mut statement = self.tx.prepare_cached(
            "SELECT slot, run_id, expires FROM fourit_leases WHERE ns = ?1 AND job = ?2",
        )?;
        let rows = statement.query_map(params![self.ns, job], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
        })?;
        for row in rows {
            let (slot, run_id, expires_ms) = row?;
            let held = Held { run_id, expires_ms };
            match parse_slot(&slot) {
                Some(None) => record.lease = Some(held),
                Some(Some(slot)) => {
                    record.run_leases.insert(slot, held);
                }
                // A slot of a newer version's: not this version's to read or write.
                None => {}
            }
        }
        Ok(record)
    }

    /// Writes what changed from `before` to `after`: the job's row, the leases.
    pub(super) fn store(
        &self,
        job: &str,
        before: &JobRecord,
        after: &JobRecord,
    ) -> rusqlite::Result<()> {
        let row = |record: &JobRecord| {
            (
                record.mark,
                record.fence,
                record.claim,
                record.released.clone(),
                record.last.clone(),
                record.pause.clone(),
            )
        };
        if row(before) != row(after) {
            self.save(job, after)?;
        }
        if before.lease != after.lease {
            self.put_lease(job, &slot(None), after.lease.as_ref())?;
        }
        for run in before.run_leases.keys() {
            if !after.run_leases.contains_key(run) {
                self.put_lease(job, &slot(Some(*run)), None)?;
            }
        }
        for (run, held) in &after.run_leases {
            if before.run_leases.get(run) != Some(held) {
                self.put_lease(job, &slot(Some(*run)), Some(held))?;
            }
        }
        Ok(())
    }

    fn save(&self, job: &str, record: &JobRecord) -> rusqlite::Result<()> {
        let pause = record.pause.as_ref();
        self.tx.execute(
            "INSERT OR REPLACE INTO fourit_jobs (ns, job, tick, fence, node, claim, started,
               finished, outcome, error, released, paused, paused_by, paused_note, paused_at,
               paused_ticks, paused_first, paused_last)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
               ?17, ?18)",
            params![
                self.ns,
                job,
                record.mark,
                signed(record.fence),
                record.last.node,
                record.claim.map(|id| id.to_string()),
                record.last.started_ms,
                record.last.finished_ms,
                record.last.outcome,
                record.last.error,
                record.released,
                i64::from(pause.is_some()),
                pause.map(|p| p.by.clone()),
                pause.and_then(|p| p.note.clone()),
                pause.map(|p| p.since_ms),
                pause.map_or(0, |p| signed(p.ticks)),
                pause.and_then(|p| p.first_tick_ms),
                pause.and_then(|p| p.last_tick_ms),
            ],
        )?;
        Ok(())
    }

    /// Sets (or, with `None`, deletes) one lease slot of the job.
    fn put_lease(&self, job: &str, slot: &str, held: Option<&Held>) -> rusqlite::Result<()> {
        match held {
            Some(held) => self.tx.execute(
                "INSERT OR REPLACE INTO fourit_leases (ns, job, slot, run_id, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![self.ns, job, slot, held.run_id, held.expires_ms],
            )?,
            None => self.tx.execute(
                "DELETE FROM fourit_leases WHERE ns = ?1 AND job = ?2 AND slot = ?3",
                params![self.ns, job, slot],
            )?,
        };
        Ok(())
    }

    /// Appends `entries` (oldest first) to the job's history, keeping the last
    /// [`HISTORY_LEN`].
    pub(super) fn append(&self, job: &str, entries: &[HistoryEntry]) -> rusqlite::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let number = |value: Option<u64>| value.map(signed);
        for entry in entries {
            self.tx.execute(
                "INSERT INTO fourit_history (ns, job, tick, node, outcome, detail, fence,
                   duration_ms, delay_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    self.ns,
                    job,
                    entry.tick_ms,
                    entry.node,
                    entry.outcome,
                    entry.detail,
                    number(entry.fence),
                    number(entry.duration_ms),
                    number(entry.delay_ms),
                ],
            )?;
        }
        self.tx.execute(
            "DELETE FROM fourit_history WHERE ns = ?1 AND job = ?2 AND id <= (
               SELECT id FROM fourit_history WHERE ns = ?1 AND job = ?2
               ORDER BY id DESC LIMIT 1 OFFSET ?3)",
            params![self.ns, job, signed(HISTORY_LEN as u64)],
        )?;
        Ok(())
    }

    /// The job's history, newest first.
    pub(super) fn history(&self, job: &str, limit: usize) -> rusqlite::Result<Vec<HistoryEntry>> {
        let mut statement = self.tx.prepare(
            "SELECT tick, node, outcome, detail, fence, duration_ms, delay_ms
             FROM fourit_history WHERE ns = ?1 AND job = ?2 ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = statement.query_map(params![self.ns, job, signed(limit as u64)], |r| {
            Ok(HistoryEntry {
                tick_ms: r.get(0)?,
                node: r.get(1)?,
                outcome: r.get(2)?,
                detail: r.get(3)?,
                fence: unsigned(r.get(4)?),
                duration_ms: unsigned(r.get(5)?),
                delay_ms: unsigned(r.get(6)?),
            })
        })?;
        rows.collect()
    }

    /// Every live member, by node.
    pub(super) fn members(&self) -> rusqlite::Result<BTreeMap<String, MemberRecord>> {
        let mut statement = self
            .tx
            .prepare("SELECT node, heartbeat, clock_offset FROM fourit_members WHERE ns = ?1")?;
        let rows = statement.query_map(params![self.ns], |r| {
            Ok((
                r.get::<_, String>(0)?,
                MemberRecord {
                    heartbeat_ms: r.get(1)?,
                    clock_offset_us: r.get(2)?,
                },
            ))
        })?;
        rows.collect()
    }

    /// Writes member `node` as `record`, or forgets it.
    pub(super) fn put_member(
        &self,
        node: &str,
        record: Option<&MemberRecord>,
    ) -> rusqlite::Result<()> {
        match record {
            Some(record) => self.tx.execute(
                "INSERT OR REPLACE INTO fourit_members (ns, node, heartbeat, clock_offset)
                 VALUES (?1, ?2, ?3, ?4)",
                params![self.ns, node, record.heartbeat_ms, record.clock_offset_us],
            )?,
            None => self.tx.execute(
                "DELETE FROM fourit_members WHERE ns = ?1 AND node = ?2",
                params![self.ns, node],
            )?,
        };
        Ok(())
    }

    /// A manual request and where it stands.
    pub(super) fn manual(
        &self,
        job: &str,
        id: &str,
    ) -> rusqlite::Result<Option<(ManualRequest, ManualState)>> {
        let text: Option<String> = self
            .tx
            .query_row(
                "SELECT record FROM fourit_manual WHERE ns = ?1 AND job = ?2 AND id = ?3",
                params![self.ns, job, id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(text.and_then(|text| ManualRequest::parse(job, id, &text)))
    }

    /// Writes a manual request where it stands now.
    pub(super) fn put_manual(
        &self,
        request: &ManualRequest,
        state: &ManualState,
    ) -> rusqlite::Result<()> {
        self.tx.execute(
            "INSERT OR REPLACE INTO fourit_manual (ns, job, id, record, requested)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                self.ns,
                request.job,
                request.id,
                request.stored(state),
                request.requested_ms
            ],
        )?;
        Ok(())
    }

    /// The tick of the job's latest manual request, if it has any.
    pub(super) fn latest_manual(&self, job: &str) -> rusqlite::Result<Option<i64>> {
        self.tx.query_row(
            "SELECT MAX(requested) FROM fourit_manual WHERE ns = ?1 AND job = ?2",
            params![self.ns, job],
            |r| r.get(0),
        )
    }

    /// Whether a manual request waits for a member (one query, whatever the number of
    /// requests).
    pub(super) fn manual_pending(&self) -> rusqlite::Result<bool> {
        self.tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM fourit_manual WHERE ns = ?1
               AND record LIKE '%' || char(9) || 'pending')",
            params![self.ns],
            |r| r.get(0),
        )
    }

    /// The manual requests no member took yet, oldest first.
    pub(super) fn pending_manual(&self) -> rusqlite::Result<Vec<ManualRequest>> {
        let mut statement = self.tx.prepare(
            "SELECT job, id, record FROM fourit_manual WHERE ns = ?1 ORDER BY requested",
        )?;
        let rows = statement.query_map(params![self.ns], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut pending = Vec::new();
        for row in rows {
            let (job, id, text) = row?;
            if let Some((request, ManualState::Pending)) = ManualRequest::parse(&job, &id, &text) {
                pending.push(request);
            }
        }
        Ok(pending)
    }

    /// Writes `node`'s definition of `job`, registered at `at_ms`.
    pub(super) fn put_registration(
        &self,
        node: &str,
        job: &JobDefinition,
        at_ms: i64,
    ) -> rusqlite::Result<()> {
        self.tx.execute(
            "INSERT OR REPLACE INTO fourit_defs (ns, job, node, line) VALUES (?1, ?2, ?3, ?4)",
            params![self.ns, job.name, node, job.to_line_at(at_ms)],
        )?;
        Ok(())
    }

    /// Deletes `node`'s registration of `job`.
    pub(super) fn delete_registration(&self, job: &str, node: &str) -> rusqlite::Result<()> {
        self.tx.execute(
            "DELETE FROM fourit_defs WHERE ns = ?1 AND job = ?2 AND node = ?3",
            params![self.ns, job, node],
        )?;
        Ok(())
    }

    /// Every registration of the jobs `job` names (every job for `None`), by job then node.
    pub(super) fn registrations_of(
        &self,
        job: Option<&str>,
    ) -> rusqlite::Result<BTreeMap<String, JobRegistrations>> {
        let mut statement = self.tx.prepare(
            "SELECT job, node, line FROM fourit_defs WHERE ns = ?1 AND (?2 IS NULL OR job = ?2)",
        )?;
        let rows = statement.query_map(params![self.ns, job], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out: BTreeMap<String, JobRegistrations> = BTreeMap::new();
        for row in rows {
            let (job, node, line) = row?;
            let registrations = out.entry(job.clone()).or_default();
            if let Some(registered) = Registered::parse(&job, &line) {
                registrations.insert(node, registered);
            }
        }
        Ok(out)
    }

    /// Registrations follow the members ([`prune_all`]), over every job: the registrations
    /// that go are deleted.
    pub(super) fn prune_catalog(&self) -> rusqlite::Result<()> {
        let members = self.members()?;
        let mut catalog = self.registrations_of(None)?;
        for (job, node) in prune_all(&mut catalog, &|node| members.contains_key(node)) {
            self.delete_registration(&job, &node)?;
        }
        Ok(())
    }
}
