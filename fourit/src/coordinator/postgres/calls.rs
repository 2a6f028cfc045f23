//! One call: an unnamed statement on a pooled connection under the deadline, sent again once
//! when the server asks (a deadlock or serialization failure), its connection dropped when it
//! timed out or ended the session.

use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};
use tracing::debug;

use super::errors::{detail, ends_session, failure, must_retry, no_answer};
use super::pool::{Busy, forget};
use super::{DEADLINE, PostgresCoordinator};
use crate::error::{CoordinatorError, Error, ErrorKind};

impl PostgresCoordinator {
    pub(super) fn error(&self, operation: &'static str, err: &tokio_postgres::Error) -> Error {
        failure(&self.url, operation, err)
    }

    pub(super) fn timeout(&self, operation: &'static str) -> Error {
        no_answer(&self.url, operation)
    }

    /// Runs one statement and answers its rows. The statement is unnamed, its parameters'
    /// types given (one round trip, nothing left on the server's session): what a
    /// transaction-pooling proxy needs.
    pub(super) async fn rows(
        &self,
        operation: &'static str,
        sql: &'static str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        let slot = self.slot();
        let _busy = Busy::on(slot);
        let client = self.client(slot, operation).await?;
        let mut answer = tokio::time::timeout(DEADLINE, client.query_typed(sql, params)).await;
        if let Ok(Err(err)) = &answer
            && must_retry(err)
        {
            // Each statement is its own transaction: one that lost a deadlock or a
            // serialization check changed nothing, and sent again it is decided afresh.
            debug!(operation, error = %detail(err), "Postgres asked for a retry; sending again");
            answer = tokio::time::timeout(DEADLINE, client.query_typed(sql, params)).await;
        }
        match answer {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(err)) => {
                if ends_session(&err) {
                    forget(slot, &client).await;
                }
                Err(self.error(operation, &err))
            }
            Err(_) => {
                // No answer: the link may be dropping traffic (a partition), and then every
                // pooled connection to the server is as stuck as this one, even those idle
                // now: all are forgotten, and the next calls open fresh ones (a release after
                // the heal must not wait a deadline on a connection the partition killed).
                forget(slot, &client).await;
                self.forget_all().await;
                Err(self.timeout(operation))
            }
        }
    }

    pub(super) async fn one(
        &self,
        operation: &'static str,
        sql: &'static str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Row, Error> {
        self.rows(operation, sql, params)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Coordinator(CoordinatorError::new(
                    "Postgres",
                    operation,
                    ErrorKind::Protocol,
                    "no row",
                ))
            })
    }
}
