//! A member's registration of its jobs in the catalog (`fourit_defs`), answered with every
//! member's registration of each, in one statement.

use super::PostgresCoordinator;
use crate::coordinator::{JobDefinition, Registrations};
use crate::error::Error;
use crate::job::BoxFuture;

impl PostgresCoordinator {
    /// Records `node`'s jobs in the catalog and answers every registration of each
    /// ([`Coordinator::register`](crate::coordinator::Coordinator::register)).
    pub(super) fn register_jobs<'a>(
        &'a self,
        node: &'a str,
        jobs: &'a [JobDefinition],
    ) -> BoxFuture<'a, Result<Vec<Registrations>, Error>> {
        Box::pin(async move {
            let names: Vec<&str> = jobs.iter().map(|job| job.name.as_str()).collect();
            let lines: Vec<String> = jobs.iter().map(JobDefinition::to_line).collect();
            // One statement: record this member's lines, then read every member's.
            let rows = self
                .rows(
                    "register",
                    "WITH written AS (
                       INSERT INTO fourit_defs (ns, job, node, line)
                       SELECT $1, job, $2, line FROM unnest($3::text[], $4::text[]) AS t(job, line)
                       ON CONFLICT (ns, job, node) DO UPDATE SET line = excluded.line
                       RETURNING job, node, line)
                     SELECT job, node, line FROM written
                     UNION ALL
                     SELECT d.job, d.node, d.line FROM fourit_defs d
                     WHERE d.ns = $1 AND d.job = ANY($3) AND d.node <> $2",
                    typed![&self.namespace, &node, &names, &lines],
                )
                .await?;
            Ok(names
                .iter()
                .map(|name| {
                    let mut registrations: Registrations = rows
                        .iter()
                        .filter(|row| row.get::<_, &str>(0) == *name)
                        .filter_map(|row| {
                            JobDefinition::from_line(name, row.get(2))
                                .map(|def| (row.get::<_, String>(1), def))
                        })
                        .collect();
                    registrations.sort_by(|a, b| a.0.cmp(&b.0));
                    registrations
                })
                .collect())
        })
    }
}
