//! The feed of decided ticks a coordinator may offer (see [`Coordinator::claim_notices`]).
//!
//! [`Coordinator::claim_notices`]: super::Coordinator::claim_notices

use std::sync::Arc;

use tokio::sync::broadcast;

/// A tick that has been decided: some process claimed it (to run it, or to skip it as an
/// overlap or paused). Processes that were waiting for the handoff window to close need not
/// claim it. Or, when `manual` is set, news that a manual run of the job was requested: the
/// members that register it ask for the manual runs waiting at once, not at their next
/// heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimNotice {
    /// The job's name.
    pub job: Arc<str>,
    /// The tick, in UTC milliseconds (for a manual request: when it was asked for).
    pub tick_ms: i64,
    /// A manual run was requested ([`Admin::request_manual`](super::Admin::request_manual));
    /// no tick was decided.
    pub manual: bool,
}

impl ClaimNotice {
    /// A notice as the coordinators send it: `<tick ms> <job>` for a decided tick, or
    /// `manual <job>` for a manual request (a tick is a number, so members of an older
    /// version ignore a manual one). `None` for anything else.
    pub fn parse(text: &str) -> Option<ClaimNotice> {
        let (tick, job) = text.split_once(' ')?;
        if tick == MANUAL_NOTICE {
            return Some(ClaimNotice {
                job: Arc::from(job),
                tick_ms: 0,
                manual: true,
            });
        }
        Some(ClaimNotice {
            job: Arc::from(job),
            tick_ms: tick.parse().ok()?,
            manual: false,
        })
    }
}

/// The first word of the notice a manual request sends.
pub(crate) const MANUAL_NOTICE: &str = "manual";

/// How many notices a slow listener may fall behind before it misses some (it then claims
/// those ticks itself and is refused: a round trip lost, nothing else).
pub const NOTICE_BUFFER: usize = 4096;

/// The sending side of a coordinator's notice feed: what a backend holds. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NoticeSender {
    sender: broadcast::Sender<ClaimNotice>,
}

impl Default for NoticeSender {
    fn default() -> Self {
        NoticeSender {
            sender: broadcast::channel(NOTICE_BUFFER).0,
        }
    }
}

impl NoticeSender {
    /// A feed with room for [`NOTICE_BUFFER`] notices per listener.
    pub fn new() -> NoticeSender {
        NoticeSender::default()
    }

    /// Hands `notice` to every listener; nobody listening is not an error.
    pub fn send(&self, notice: ClaimNotice) {
        let _ = self.sender.send(notice);
    }

    /// Whether anyone listens (so a backend can skip building notices nobody reads).
    pub fn has_listeners(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// A new listener, hearing the notices sent from now on.
    pub fn subscribe(&self) -> ClaimNotices {
        ClaimNotices {
            receiver: self.sender.subscribe(),
        }
    }
}

/// A listener of a coordinator's notice feed.
#[derive(Debug)]
pub struct ClaimNotices {
    receiver: broadcast::Receiver<ClaimNotice>,
}

impl ClaimNotices {
    /// The next notice, or `None` once the coordinator is gone. A listener that fell behind
    /// skips what it missed: notices are best effort.
    pub async fn next(&mut self) -> Option<ClaimNotice> {
        loop {
            match self.receiver.recv().await {
                Ok(notice) => return Some(notice),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
