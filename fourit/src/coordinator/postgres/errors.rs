//! How the driver's errors map to fourit's: the kind (authentication, permission,
//! unavailable, protocol), the server's message, and the errors that end a session or ask
//! for the statement again.

use tokio_postgres::Row;

use super::DEADLINE;
use crate::error::{CoordinatorError, Error, ErrorKind};

pub(super) fn kind_of(err: &tokio_postgres::Error) -> ErrorKind {
    use tokio_postgres::error::SqlState;
    match err.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            ErrorKind::Authentication
        }
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => ErrorKind::Permission,
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            ErrorKind::Unavailable
        }
        _ if ends_session(err) => ErrorKind::Unavailable,
        _ => ErrorKind::Protocol,
    }
}

/// A failed call's error, at the redacted `url`.
pub(super) fn failure(url: &str, operation: &'static str, err: &tokio_postgres::Error) -> Error {
    Error::Coordinator(
        CoordinatorError::new("Postgres", operation, kind_of(err), detail(err)).at(url),
    )
}

/// An unanswered call's error, at the redacted `url`.
pub(super) fn no_answer(url: &str, operation: &'static str) -> Error {
    Error::Coordinator(
        CoordinatorError::new(
            "Postgres",
            operation,
            ErrorKind::Timeout,
            format!("no answer within {DEADLINE:?}"),
        )
        .at(url),
    )
}

/// `rows` answer `expected` requests, one row each, or the server broke the protocol.
pub(super) fn answers(operation: &'static str, rows: &[Row], expected: usize) -> Result<(), Error> {
    if rows.len() == expected {
        return Ok(());
    }
    Err(Error::Coordinator(CoordinatorError::new(
        "Postgres",
        operation,
        ErrorKind::Protocol,
        format!("{} answers to {expected} requests", rows.len()),
    )))
}

/// Whether the server refused `err`'s statement for a retry: a serialization failure
/// (40001) or a deadlock it broke (40P01).
pub(super) fn must_retry(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    err.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Whether `err` ended the session: the connection closed or broke, or the server is ending
/// it (shut down, restarting, `pg_terminate_backend`).
pub(super) fn ends_session(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match err.code() {
        Some(code) => {
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
        None => true,
    }
}

/// The error's text with the server's message (tokio-postgres says only "db error"), or with
/// its causes (a TLS handshake's, say).
pub(super) fn detail(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return format!("{}: {} ({})", err, db.message(), db.code().code());
    }
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(source) = cause {
        text.push_str(": ");
        text.push_str(&source.to_string());
        cause = source.source();
    }
    text
}
