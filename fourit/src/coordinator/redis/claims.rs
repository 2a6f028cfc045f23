//! Claims and releases as pipelines: one script call per request, answered in order, with
//! replica acknowledgements checked and the ticks nobody ran recorded as missed.

use super::{RedisCoordinator, link, replies, scripts};
use crate::coordinator::{ClaimOutcome, ClaimRequest, HISTORY_LEN, Lease, MissedTicks, RunRecord};
use crate::error::{Error, ErrorKind as Kind};

impl RedisCoordinator {
    pub(super) async fn claim_all(
        &self,
        requests: &[ClaimRequest],
    ) -> Result<Vec<ClaimOutcome>, Error> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let commands = requests
            .iter()
            .map(|request| {
                // Only a claim that others may be waiting out the handoff for is announced.
                let notice = request
                    .preferred
                    .as_ref()
                    .map(|_| (self.channel.as_str(), &*request.job));
                let keys = self.job_keys(&request.job);
                (
                    link::slot(&keys.state),
                    self.scripts.claim(&keys, request, notice),
                )
            })
            .collect();
        let replies = self
            .call(
                "claim",
                self.link
                    .pipeline(scripts::CLAIM, commands, self.replica_acks),
            )
            .await?;
        let mut missed = Vec::new();
        let outcomes = requests
            .iter()
            .zip(replies)
            .map(|(request, reply)| match reply {
                Ok(answer) => {
                    let (outcome, mark) = replies::decode_claim(request, answer.value)?;
                    if let (Some(mark), Some(schedule)) = (mark, &request.schedule)
                        && let Some(ticks) = MissedTicks::between(schedule, mark, request.tick_ms)
                    {
                        missed.push((request, ticks));
                    }
                    Ok(match (outcome, self.replica_acks, answer.acknowledged) {
                        (
                            ClaimOutcome::Run(lease) | ClaimOutcome::Resumed(lease),
                            Some(acks),
                            Some(acknowledged),
                        ) if acknowledged < acks.replicas => ClaimOutcome::NotDurable {
                            lease,
                            acknowledged,
                            wanted: acks.replicas,
                        },
                        (outcome, _, _) => outcome,
                    })
                }
                Err(err) => {
                    let err = self.error("claim", err);
                    if err.is_unavailable() {
                        // Part of a batch a cluster node did not answer: this claim alone.
                        Ok(ClaimOutcome::Undecided {
                            detail: err.to_string(),
                        })
                    } else {
                        Err(err)
                    }
                }
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if !missed.is_empty() {
            self.record_missed(&missed).await;
        }
        Ok(outcomes)
    }

    /// Records in history the ticks that claims just skipped over (the old mark was older
    /// than the schedule's previous tick): one `missed` entry per job, by the one claimer
    /// that moved the mark. Best effort: a failure costs the record, never a run.
    pub(super) async fn record_missed(&self, missed: &[(&ClaimRequest, MissedTicks)]) {
        let commands = missed
            .iter()
            .map(|(request, ticks)| {
                let keys = self.job_keys(&request.job);
                let mut cmd = redis::cmd("XADD");
                cmd.arg(&keys.runs)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(HISTORY_LEN)
                    .arg("*")
                    .arg("tick")
                    .arg(ticks.last_ms)
                    .arg("node")
                    .arg(&*request.node)
                    .arg("outcome")
                    .arg("missed")
                    .arg("detail")
                    .arg(ticks.detail())
                    .arg("missed_count")
                    .arg(ticks.count)
                    .arg("missed_first")
                    .arg(ticks.first_ms);
                (link::slot(&keys.state), cmd)
            })
            .collect();
        for (request, ticks) in missed {
            let _ = self
                .missed
                .send(crate::coordinator::MissedNotice::new(request, ticks));
            tracing::warn!(
                job = &*request.job,
                missed = ticks.count,
                first = ticks.first_ms,
                last = ticks.last_ms,
                "ticks nobody ran (the fleet was down or stalled): recorded as missed"
            );
        }
        if let Err(err) = self
            .call(
                "record missed",
                self.link.pipeline(scripts::CLAIM, commands, None),
            )
            .await
        {
            tracing::debug!(error = %err, "could not record missed ticks");
        }
    }

    pub(super) async fn release_runs(
        &self,
        runs: &[(Lease, RunRecord)],
    ) -> Vec<Result<bool, Error>> {
        if runs.is_empty() {
            return Vec::new();
        }
        let replies = match self
            .pipeline("release", scripts::RELEASE, runs, |(lease, record)| {
                let keys = self.job_keys(&lease.job);
                (
                    link::slot(&keys.state),
                    self.scripts
                        .release(&keys, &keys.lease_of(lease), lease, record),
                )
            })
            .await
        {
            Ok(replies) => replies,
            Err(err) => {
                // One error for the batch: the first run gets it, the others its text.
                let detail = err.to_string();
                let mut answers: Vec<Result<bool, Error>> = vec![Err(err)];
                answers.extend(
                    runs[1..]
                        .iter()
                        .map(|_| Err(self.fail("release", Kind::Unavailable, detail.clone()))),
                );
                return answers;
            }
        };
        replies
            .into_iter()
            .map(|reply| replies::decode_release(reply.map_err(|err| self.error("release", err))?))
            .collect()
    }
}
