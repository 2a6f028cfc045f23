//! Manual runs (`fourit trigger`): the request, where it stands, a member's claim of it, and
//! the one-line text the Redis, Postgres and SQLite backends store a request as.

use super::claim::Lease;

/// A manual run asked for ([`Admin::request_manual`](super::Admin::request_manual), `fourit trigger`), until a member
/// takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManualRequest {
    /// The job.
    pub job: String,
    /// The request's id, unique in the namespace.
    pub id: String,
    /// Who asked.
    pub by: String,
    /// When (UTC ms, the coordinator's clock): the run's tick.
    pub requested_ms: i64,
    /// Run even while a previous run holds the job's lease (overlap = skip).
    pub force: bool,
}

/// The answer to a member's claim of a manual run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManualOutcome {
    /// This member runs it, under this lease (a fence of its own; the job's high-water mark
    /// does not move).
    Run(Lease),
    /// Not forced, and a previous run holds the lease: skipped, and recorded so.
    Overlap {
        /// The holder's run id.
        holder: String,
    },
    /// Another member took it (or it is gone).
    Taken,
}

/// Where a manual request stands ([`Admin::manual_state`](super::Admin::manual_state)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManualState {
    /// No member has taken it yet.
    Pending,
    /// A member runs (or ran) it, with this fence.
    Started {
        /// The member.
        node: String,
        /// The run's fence: its outcome is the history entry with this fence.
        fence: u64,
    },
    /// Skipped: a previous run held the lease, and it was not forced.
    Skipped {
        /// The holder's run id.
        holder: String,
    },
}

impl ManualRequest {
    /// The stored form of the request where it stands as `state`:
    /// `by \t requested ms \t force \t state...`.
    // Redis and Postgres write it in their own languages; SQLite in Rust.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn stored(&self, state: &ManualState) -> String {
        let base = format!(
            "{}\t{}\t{}\t",
            self.by.replace(['\t', '\n'], " "),
            self.requested_ms,
            if self.force { "1" } else { "0" }
        );
        match state {
            ManualState::Pending => format!("{base}pending"),
            ManualState::Started { node, fence } => format!("{base}started\t{node}\t{fence}"),
            ManualState::Skipped { holder } => format!("{base}skipped\t{holder}"),
        }
    }

    /// A request of `job` from its stored form, and where it stands.
    pub(crate) fn parse(job: &str, id: &str, text: &str) -> Option<(ManualRequest, ManualState)> {
        let fields: Vec<&str> = text.split('\t').collect();
        let request = ManualRequest {
            job: job.to_string(),
            id: id.to_string(),
            by: (*fields.first()?).to_string(),
            requested_ms: fields.get(1)?.parse().ok()?,
            force: *fields.get(2)? == "1",
        };
        let state = match *fields.get(3)? {
            "pending" => ManualState::Pending,
            "started" => ManualState::Started {
                node: (*fields.get(4)?).to_string(),
                fence: fields.get(5)?.parse().ok()?,
            },
            "skipped" => ManualState::Skipped {
                holder: fields.get(4).map(|h| (*h).to_string()).unwrap_or_default(),
            },
            _ => return None,
        };
        Some((request, state))
    }
}
