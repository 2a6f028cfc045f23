//! A member's registration of its jobs in the catalog (`fourit_defs`), answered with every
//! member's registration of each; and the catalog pruned as the members change.
//!
//! Runs the rule book's `register` and `prune` (`coordinator/rules/members.rs`) over the rows
//! a statement answers (the registrations and the live members together), and deletes what
//! goes with a second statement, only a row still holding the line read (a registration
//! written again meanwhile stays).

use std::collections::{BTreeMap, HashSet};

use tokio_postgres::Row;

use super::PostgresCoordinator;
use crate::coordinator::rules::members::{self, JobRegistrations, Registered};
use crate::coordinator::{JobDefinition, Registrations};
use crate::error::Error;
use crate::job::BoxFuture;

/// Registrations and live members, as the statements below answer them: `(job, node, line)`
/// rows, a member's with a null job.
struct Read {
    catalog: BTreeMap<String, JobRegistrations>,
    lines: BTreeMap<(String, String), String>,
    live: HashSet<String>,
}

fn read(rows: &[Row]) -> Read {
    let mut read = Read {
        catalog: BTreeMap::new(),
        lines: BTreeMap::new(),
        live: HashSet::new(),
    };
    for row in rows {
        let node: String = row.get(1);
        match (
            row.get::<_, Option<String>>(0),
            row.get::<_, Option<String>>(2),
        ) {
            (Some(job), Some(line)) => {
                let registrations = read.catalog.entry(job.clone()).or_default();
                if let Some(registered) = Registered::parse(&job, &line) {
                    registrations.insert(node.clone(), registered);
                }
                read.lines.insert((job, node), line);
            }
            _ => {
                read.live.insert(node);
            }
        }
    }
    read
}

/// The live members' rows of the statements' answers.
macro_rules! members_rows {
    () => {
        "SELECT NULL::text, node, NULL::text FROM fourit_members WHERE ns = $1"
    };
}

impl PostgresCoordinator {
    /// Records `node`'s jobs in the catalog at the server's time, prunes their registrations
    /// to the live members (this one included), and answers the registrations of each
    /// ([`Coordinator::register`](crate::coordinator::Coordinator::register)).
    pub(super) fn register_jobs<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        Box::pin(async move {
            let names: Vec<&str> = jobs.iter().map(|job| job.name.as_str()).collect();
            let fields: Vec<String> = jobs.iter().map(JobDefinition::fields).collect();
            // One statement: record this member's lines (`v2`, the server's time, the
            // fields), then read every member's and the live members.
            let statement = concat!(
                "WITH written AS (
                   INSERT INTO fourit_defs (ns, job, node, line)
                   SELECT $1, job, $2, 'v2' || chr(9) || fourit_now() || chr(9) || fields
                   FROM unnest($3::text[], $4::text[]) AS t(job, fields)
                   ON CONFLICT (ns, job, node) DO UPDATE SET line = excluded.line
                   RETURNING job, node, line)
                 SELECT job, node, line FROM written
                 UNION ALL
                 SELECT d.job, d.node, d.line FROM fourit_defs d
                 WHERE d.ns = $1 AND d.job = ANY($3) AND d.node <> $2
                 UNION ALL ",
                members_rows!()
            );
            let rows = self
                .rows(
                    "register",
                    statement,
                    typed![&self.namespace, &node, &names, &fields],
                )
                .await?;
            let mut read = read(&rows);
            let mut gone = Vec::new();
            let mut answers = Vec::with_capacity(names.len());
            for name in &names {
                let registrations = read.catalog.entry((*name).to_string()).or_default();
                let live = |other: &str| other == node || read.live.contains(other);
                for other in members::prune(registrations, &live) {
                    gone.push(((*name).to_string(), other));
                }
                answers.push(members::answer(registrations));
            }
            self.forget_registrations("register", &gone, &read.lines)
                .await?;
            Ok(answers)
        })
    }

    /// Deletes the registrations `gone` names (job, node), each only if it still holds the
    /// line read.
    async fn forget_registrations(
        &self,
        operation: &'static str,
        gone: &[(String, String)],
        lines: &BTreeMap<(String, String), String>,
    ) -> Result<(), Error> {
        if gone.is_empty() {
            return Ok(());
        }
        let mut jobs = Vec::with_capacity(gone.len());
        let mut nodes = Vec::with_capacity(gone.len());
        let mut texts = Vec::with_capacity(gone.len());
        for (job, node) in gone {
            if let Some(line) = lines.get(&(job.clone(), node.clone())) {
                jobs.push(job.as_str());
                nodes.push(node.as_str());
                texts.push(line.as_str());
            }
        }
        self.rows(
            operation,
            "DELETE FROM fourit_defs d
             USING unnest($2::text[], $3::text[], $4::text[]) AS t(job, node, line)
             WHERE d.ns = $1 AND d.job = t.job AND d.node = t.node AND d.line = t.line",
            typed![&self.namespace, &jobs, &nodes, &texts],
        )
        .await?;
        Ok(())
    }

    /// Registrations follow the members ([`members::prune_all`]) over every job: after a
    /// leave, after a heartbeat that forgot silent members, and as the catalog is read.
    /// Answers the catalog's registrations left, by job.
    pub(super) async fn prune_catalog(
        &self,
        operation: &'static str,
    ) -> Result<BTreeMap<String, JobRegistrations>, Error> {
        let statement = concat!(
            "SELECT job, node, line FROM fourit_defs WHERE ns = $1 UNION ALL ",
            members_rows!()
        );
        let rows = self
            .rows(operation, statement, typed![&self.namespace])
            .await?;
        let mut read = read(&rows);
        let live = &read.live;
        let gone = members::prune_all(&mut read.catalog, &|node| live.contains(node));
        self.forget_registrations(operation, &gone, &read.lines)
            .await?;
        Ok(read.catalog)
    }
}

impl PostgresCoordinator {
    /// [`prune_catalog`](Self::prune_catalog) after the members changed (a leave, silent
    /// members forgotten): maintenance, so a failure is logged and left to the next
    /// registration or catalog read.
    pub(super) async fn prune_after(&self, operation: &'static str) {
        if let Err(err) = self.prune_catalog(operation).await {
            tracing::debug!(error = %err, "could not prune the registrations of gone members");
        }
    }
}
