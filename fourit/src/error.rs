//! The one error type of fourit.

use std::fmt;

/// Everything that can go wrong in fourit, each message saying what to do next.
///
/// URLs inside errors are always redacted: a password never appears in an error's text.
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

    /// A coordinator call failed, or the coordinator refused it: the operation did not
    /// happen, or its effect is unknown; fourit never runs a job on such an answer. The
    /// error names the backend, the URL (password redacted) and what to do.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),

    /// An admin call named a job the coordinator's catalog does not have.
    #[error("no such job: `{job}` is not in this namespace's catalog")]
    NoSuchJob {
        /// The name asked for.
        job: String,
    },

    /// An admin call that would lose what live members use, such as removing a job that a
    /// live member still registers.
    #[error("{reason}")]
    Refused {
        /// Why.
        reason: String,
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
        self.coordinator_kind()
            .is_some_and(|kind| matches!(kind, ErrorKind::Unavailable | ErrorKind::Timeout))
    }

    /// The kind of a coordinator error; `None` for other errors.
    pub fn coordinator_kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Coordinator(err) => Some(err.kind()),
            _ => None,
        }
    }
}

/// What kind of coordinator failure an [`Error::Coordinator`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The coordinator could not be reached, or the connection broke (worth retrying).
    Unavailable,
    /// The coordinator did not answer within the call's deadline (worth retrying).
    Timeout,
    /// The coordinator rejected the credentials.
    Authentication,
    /// The user lacks a permission fourit needs.
    Permission,
    /// TLS failed: an untrusted or invalid certificate.
    Tls,
    /// The coordinator answered something fourit does not understand, or an error of its own.
    Protocol,
}

/// A failed or refused coordinator call: which backend, where, doing what, and why.
///
/// Its text never holds a password: the URL is redacted, and the client library's error is
/// kept as [`source`](std::error::Error::source) only through a wrapper that holds its text
/// with the password scrubbed.
#[derive(Debug)]
pub struct CoordinatorError {
    backend: &'static str,
    url: Option<String>,
    operation: &'static str,
    kind: ErrorKind,
    detail: String,
    source: Option<Redacted>,
}

impl CoordinatorError {
    /// A coordinator error: `backend` names it ("Redis"), `operation` says what fourit was
    /// doing ("claim"), `detail` what went wrong (no secrets).
    pub fn new(
        backend: &'static str,
        operation: &'static str,
        kind: ErrorKind,
        detail: impl Into<String>,
    ) -> CoordinatorError {
        CoordinatorError {
            backend,
            url: None,
            operation,
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    /// The coordinator's URL, which must already be redacted
    /// ([`redact_url`](crate::redact_url)).
    pub fn at(mut self, redacted_url: impl Into<String>) -> CoordinatorError {
        self.url = Some(redacted_url.into());
        self
    }

    /// Keeps `source` as the cause, with every occurrence of `secret` in its text (and its
    /// causes' texts) replaced by `***`.
    pub fn caused_by(
        mut self,
        source: &(dyn std::error::Error + 'static),
        secret: Option<&str>,
    ) -> CoordinatorError {
        self.source = Some(Redacted::of(source, secret));
        self
    }

    /// The backend: `Redis`, `memory`, ...
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// What fourit was doing: `connect`, `claim`, `release`, ...
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// What kind of failure it is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong, in the backend's words (no secrets).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The coordinator's URL, password redacted, when known.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// One failure answered for each of `count` calls of a batch that failed as a whole (one
/// round trip, one transaction): the first gets `err` itself, the others its words.
pub(crate) fn for_each_of_batch<T>(err: Error, count: usize) -> Vec<Result<T, Error>> {
    let again = |err: &Error| match err {
        Error::Coordinator(failure) => {
            let copy = CoordinatorError::new(
                failure.backend(),
                failure.operation(),
                failure.kind(),
                failure.detail(),
            );
            Error::Coordinator(match failure.url() {
                Some(url) => copy.at(url),
                None => copy,
            })
        }
        other => Error::Coordinator(CoordinatorError::new(
            "coordinator",
            "batch",
            ErrorKind::Unavailable,
            other.to_string(),
        )),
    };
    let mut answers: Vec<Result<T, Error>> = (1..count).map(|_| Err(again(&err))).collect();
    if count > 0 {
        answers.insert(0, Err(err));
    }
    answers
}

impl fmt::Display for CoordinatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = self.backend;
        let at = self
            .url
            .as_deref()
            .map(|url| format!(" at {url}"))
            .unwrap_or_default();
        let (operation, detail) = (self.operation, &self.detail);
        match self.kind {
            ErrorKind::Authentication => write!(
                f,
                "{backend}{at} rejected the credentials: {detail}; check the user name and \
                 password in the URL"
            ),
            ErrorKind::Permission => write!(
                f,
                "{backend}{at} refused a command fourit needs: {detail}; grant the user the \
                 commands listed in the README's \"Minimal ACL\" section"
            ),
            ErrorKind::Tls => write!(
                f,
                "TLS with {backend}{at} failed: {detail}; for a private certificate authority \
                 give its certificate to SchedulerBuilder::tls"
            ),
            ErrorKind::Timeout => write!(f, "{backend}{at}: {operation} {detail}"),
            ErrorKind::Unavailable | ErrorKind::Protocol => {
                write!(f, "{backend}{at}: {operation} failed: {detail}")
            }
        }
    }
}

impl std::error::Error for CoordinatorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// A cause's text (and its causes'), with a secret scrubbed out.
#[derive(Debug)]
struct Redacted {
    text: String,
    source: Option<Box<Redacted>>,
}

impl Redacted {
    fn of(error: &(dyn std::error::Error + 'static), secret: Option<&str>) -> Redacted {
        let mut text = error.to_string();
        if let Some(secret) = secret.filter(|secret| !secret.is_empty()) {
            // Whole, decoded and in the pieces a driver may cut it into.
            text = crate::redact::scrub_secret(&text, secret);
        }
        Redacted {
            text,
            source: error
                .source()
                .map(|source| Box::new(Redacted::of(source, secret))),
        }
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Redacted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}
