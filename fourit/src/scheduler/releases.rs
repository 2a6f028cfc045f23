//! Releases: the runs that end together share one round trip, sent once the claims in
//! flight are answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::coordinator::{Coordinator, CoordinatorError, ErrorKind, Lease, RunRecord};
use crate::error::Error;

/// The most releases sent in one round trip.
const RELEASE_BATCH: usize = 64;

/// The longest a release waits for claims in flight to be answered.
const RELEASE_DEFER_MAX: Duration = Duration::from_millis(50);

/// Counts the claim calls waiting for their answer. Releases wait until there are none, so
/// that the coordinator (Redis runs one script at a time) decides all of a tick's claims, and
/// their bodies start, before it spends time on the releases of the tick's first runs.
#[derive(Debug, Default)]
pub(crate) struct ClaimsInFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One claim call in flight, until dropped.
pub(crate) struct ClaimInFlight(Arc<ClaimsInFlight>);

impl Drop for ClaimInFlight {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl ClaimsInFlight {
    /// Marks a claim call as in flight until the returned guard is dropped.
    pub(crate) fn start(self: &Arc<Self>) -> ClaimInFlight {
        self.count.fetch_add(1, Ordering::AcqRel);
        ClaimInFlight(self.clone())
    }

    /// Returns when no claim is in flight, or after `at_most`.
    async fn wait_idle(&self, at_most: Duration) {
        let deadline = Instant::now() + at_most;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a claim ending in between still wakes us.
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

/// A finished run waiting for its release, and where to send the answer.
struct PendingRelease {
    lease: Lease,
    record: RunRecord,
    answer: oneshot::Sender<Result<bool, Error>>,
}

/// Where runs hand in their releases. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Releases {
    pending: mpsc::UnboundedSender<PendingRelease>,
    coordinator: Arc<dyn Coordinator>,
}

impl std::fmt::Debug for PendingRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRelease")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Releases {
    /// Starts the task that sends releases in batches; it ends when every `Releases` is
    /// dropped, or when the returned handle is aborted.
    pub(crate) fn start(
        coordinator: Arc<dyn Coordinator>,
        claims: Arc<ClaimsInFlight>,
    ) -> (Releases, tokio::task::JoinHandle<()>) {
        let (pending, queue) = mpsc::unbounded_channel();
        let task = tokio::spawn(release_in_batches(coordinator.clone(), claims, queue));
        (
            Releases {
                pending,
                coordinator,
            },
            task,
        )
    }

    /// Releases one run: through the batching task, or directly if it is gone. Answers as
    /// [`Coordinator::release`] does.
    pub(crate) async fn release(&self, lease: Lease, record: RunRecord) -> Result<bool, Error> {
        let (answer, answered) = oneshot::channel();
        let pending = PendingRelease {
            lease,
            record,
            answer,
        };
        match self.pending.send(pending) {
            Ok(()) => answered.await.unwrap_or_else(|_| {
                Err(Error::Coordinator(CoordinatorError::new(
                    self.coordinator.backend(),
                    "release",
                    ErrorKind::Unavailable,
                    "the releaser stopped before answering",
                )))
            }),
            Err(mpsc::error::SendError(pending)) => {
                self.coordinator
                    .release(&pending.lease, &pending.record)
                    .await
            }
        }
    }
}

/// Whatever has queued up while the previous batch was on its way goes in the next round
/// trip, so runs ending together (the runs of one tick) share one.
async fn release_in_batches(
    coordinator: Arc<dyn Coordinator>,
    claims: Arc<ClaimsInFlight>,
    mut queue: mpsc::UnboundedReceiver<PendingRelease>,
) {
    let mut batch = Vec::with_capacity(RELEASE_BATCH);
    while queue.recv_many(&mut batch, RELEASE_BATCH).await > 0 {
        claims.wait_idle(RELEASE_DEFER_MAX).await;
        // Whatever else ended meanwhile goes in the same round trip.
        while batch.len() < RELEASE_BATCH {
            match queue.try_recv() {
                Ok(release) => batch.push(release),
                Err(_) => break,
            }
        }
        let (runs, answers): (Vec<(Lease, RunRecord)>, Vec<_>) = batch
            .drain(..)
            .map(|release| ((release.lease, release.record), release.answer))
            .unzip();
        let mut results = coordinator.release_all(&runs).await;
        // An answer lost to a cut connection or a timeout: sent once more (a release sent
        // again is recorded once), so a cut connection does not leave the lease to block the
        // next tick until it expires.
        let lost: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, result)| matches!(result, Err(err) if err.is_unavailable()))
            .map(|(index, _)| index)
            .collect();
        if !lost.is_empty() {
            let again: Vec<(Lease, RunRecord)> =
                lost.iter().map(|index| runs[*index].clone()).collect();
            for (index, result) in lost.into_iter().zip(coordinator.release_all(&again).await) {
                results[index] = result;
            }
        }
        for (answer, result) in answers.into_iter().zip(results) {
            // The runner may have been dropped at shutdown: nobody left to tell.
            let _ = answer.send(result);
        }
    }
}
