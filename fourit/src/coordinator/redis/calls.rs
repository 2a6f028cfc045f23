//! One call to Redis: under the deadline, its error mapped (a `READONLY` or an unanswered
//! call replaces the link), and script calls sent as pipelines that reload a forgotten script.

use std::future::Future;

use redis::{RedisError, Value};

use super::connection::classify;
use super::{BACKEND, DEADLINE, RedisCoordinator};
use crate::error::{CoordinatorError, Error, ErrorKind as Kind};

impl RedisCoordinator {
    pub(super) fn error(&self, operation: &'static str, err: RedisError) -> Error {
        self.after_readonly(&err);
        classify(operation, &self.url, self.secret.as_deref(), err)
    }

    /// A `READONLY` answer means the server was demoted to a replica (a failover): connect
    /// afresh, to the primary the sentinels name now, or to the URL's host again (a DNS name
    /// that follows the primary, as managed Redis gives). Never runs a job either way.
    pub(super) fn after_readonly(&self, err: &RedisError) {
        if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
            || err.to_string().contains("READONLY")
        {
            self.link.replace_after_readonly();
        }
    }

    /// An error of this coordinator's, at its (redacted) URL.
    pub(super) fn fail(
        &self,
        operation: &'static str,
        kind: Kind,
        detail: impl Into<String>,
    ) -> Error {
        Error::Coordinator(CoordinatorError::new(BACKEND, operation, kind, detail).at(&self.url))
    }

    /// Awaits a Redis call under the deadline, mapping its error.
    pub(super) async fn call<T>(
        &self,
        operation: &'static str,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(DEADLINE, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                self.after_readonly(&err);
                let err = classify(operation, &self.url, self.secret.as_deref(), err);
                if let Some(kind) = err.coordinator_kind() {
                    self.link.replace_after(kind);
                }
                Err(err)
            }
            Err(_) => {
                self.link.replace_after(Kind::Timeout);
                Err(self.fail(
                    operation,
                    Kind::Timeout,
                    format!("did not answer within {DEADLINE:?}"),
                ))
            }
        }
    }

    /// Sends one script call per item (each with its hash slot) and answers each in order,
    /// under the deadline; see [`Link::pipeline`].
    pub(super) async fn pipeline<T>(
        &self,
        operation: &'static str,
        code: &'static str,
        items: &[T],
        command: impl Fn(&T) -> (u16, redis::Cmd),
    ) -> Result<Vec<Result<Value, RedisError>>, Error> {
        let commands = items.iter().map(command).collect();
        let answers = self
            .call(operation, self.link.pipeline(code, commands, None))
            .await?;
        Ok(answers
            .into_iter()
            .map(|answer| answer.map(|answer| answer.value))
            .collect())
    }

    /// Runs one script call, loading the script first if the server has forgotten it.
    pub(super) async fn script(
        &self,
        operation: &'static str,
        code: &'static str,
        command: redis::Cmd,
    ) -> Result<Value, Error> {
        let mut replies = self
            .pipeline(operation, code, &[()], |()| (0, command.clone()))
            .await?;
        match replies.pop() {
            Some(reply) => reply.map_err(|err| self.error(operation, err)),
            None => Err(self.fail(operation, Kind::Protocol, "no answer")),
        }
    }
}
