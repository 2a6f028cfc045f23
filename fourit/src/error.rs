//! The one error type of fourit.

use std::time::Duration;

/// Everything that can go wrong in fourit, each message saying what to do next.
///
/// Redis URLs inside errors are always redacted: a password never appears in an error's text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A cron expression that fourit does not accept. The message is the one the
    /// `#[fourit::job]` attribute gives at compile time for the same text.
    #[error("{message}")]
    InvalidSchedule {
        /// What is wrong, naming the field and what it accepts.
        message: String,
    },

    /// A time zone that is not in the IANA database.
    #[error("{message}")]
    InvalidTimeZone {
        /// What is wrong, with the closest valid name when one is close.
        message: String,
    },

    /// A job name that fourit does not accept.
    #[error("{message}")]
    InvalidJobName {
        /// What is wrong with the name.
        message: String,
    },

    /// A scheduler or job option out of its range.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// Why it is refused.
        reason: String,
    },

    /// Two jobs share one name, so they would share one lock.
    #[error(
        "job `{name}` is defined twice: {first} and {second}; job names must be unique within a \
         fleet (give one of them `name = \"...\"`)"
    )]
    DuplicateJob {
        /// The shared name.
        name: String,
        /// Where the first definition is (`file:line`).
        first: String,
        /// Where the second definition is (`file:line`).
        second: String,
    },

    /// A coordinator URL that cannot be used.
    #[error("invalid coordinator URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Redis refused the credentials of the URL.
    #[error(
        "Redis at {url} rejected the credentials: {detail}; check the user name and password in the URL"
    )]
    Authentication {
        /// The URL, password redacted.
        url: String,
        /// What Redis answered.
        detail: String,
    },

    /// The Redis user lacks a permission fourit needs.
    #[error(
        "Redis at {url} refused a command fourit needs: {detail}; grant the user the commands \
         listed in the README's \"Minimal ACL\" section"
    )]
    Permission {
        /// The URL, password redacted.
        url: String,
        /// What Redis answered (it names the command or key).
        detail: String,
    },

    /// The TLS handshake with Redis failed: an untrusted or invalid certificate.
    #[error(
        "TLS with Redis at {url} failed: {detail}; for a private certificate authority give its \
         certificate to SchedulerBuilder::tls"
    )]
    Tls {
        /// The URL, password redacted.
        url: String,
        /// What failed.
        detail: String,
    },

    /// A Redis call failed (connection lost, server error). The operation did not happen, or
    /// its effect is unknown; fourit never runs a job on such an answer.
    #[error("Redis {operation} failed: {detail}")]
    Redis {
        /// What fourit was doing.
        operation: &'static str,
        /// What went wrong.
        detail: String,
    },

    /// A coordinator call did not answer within its deadline.
    #[error("Redis {operation} did not answer within {after:?}")]
    Timeout {
        /// What fourit was doing.
        operation: &'static str,
        /// The deadline.
        after: Duration,
    },

    /// An operating-system error, such as installing the signal handlers.
    #[error("{context}: {source}")]
    Io {
        /// What fourit was doing.
        context: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// True for errors that say the coordinator could not be reached or did not answer, as
    /// opposed to a refusal that retrying will not fix.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Redis { .. } | Error::Timeout { .. })
    }
}
