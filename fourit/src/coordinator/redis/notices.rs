//! The claim notices: a subscription to `ns:claims` that resubscribes by itself, feeding the
//! schedulers' notice listeners.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use redis::aio::PubSub;
use redis::{ErrorKind, RedisError};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::DEADLINE;
use super::sentinel::Sentinel;
use crate::coordinator::{ClaimNotice, NoticeSender};

/// How long the subscription may stay quiet before the server is asked whether it still
/// stands (a `PING` on it).
const SILENCE: Duration = Duration::from_secs(5);

/// A connection subscribed to `channel`, within the call deadline.
async fn subscribe(client: &redis::Client, channel: &str) -> Result<PubSub, RedisError> {
    let subscribing = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    match tokio::time::timeout(DEADLINE, subscribing).await {
        Ok(result) => result,
        Err(_) => Err(RedisError::from((
            ErrorKind::Io,
            "subscribing timed out",
            format!("no answer within {DEADLINE:?}"),
        ))),
    }
}

/// Where to subscribe: any of some nodes (one server, or the seeds of a cluster, where a
/// `PUBLISH` reaches every node), or the primary the sentinels name now.
pub(super) enum Subscribers {
    /// These nodes, in turn.
    Nodes(Vec<redis::Client>),
    /// The current primary of a Sentinel deployment.
    Sentinel(Arc<Sentinel>),
}

impl Subscribers {
    async fn clients(&self) -> Vec<redis::Client> {
        match self {
            Subscribers::Nodes(clients) => clients.clone(),
            Subscribers::Sentinel(sentinel) => sentinel.discover().await.into_iter().collect(),
        }
    }
}

/// A subscription to `channel` through the first of `subscribers` that answers; the last
/// error if none does.
pub(super) async fn subscribe_any(
    subscribers: &Subscribers,
    channel: &str,
) -> Result<PubSub, RedisError> {
    let mut last = RedisError::from((ErrorKind::Io, "no node to subscribe to"));
    for client in &subscribers.clients().await {
        match subscribe(client, channel).await {
            Ok(pubsub) => return Ok(pubsub),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// Forwards the notices heard on `channel` until `stop`; resubscribes, with backoff, when
/// the connection drops or goes silent (quiet for [`SILENCE`], then no answer to a ping
/// within the deadline), to the first of `subscribers` that answers (notices sent meanwhile
/// are lost, which only costs refused claims).
pub(super) async fn listen(
    subscribers: Subscribers,
    channel: String,
    subscription: PubSub,
    notices: NoticeSender,
    stop: CancellationToken,
) {
    let mut subscription = Some(subscription);
    let mut backoff = Duration::from_millis(200);
    loop {
        let pubsub = match subscription.take() {
            Some(pubsub) => pubsub,
            None => {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                match subscribe_any(&subscribers, &channel).await {
                    Ok(pubsub) => {
                        backoff = Duration::from_millis(200);
                        pubsub
                    }
                    Err(err) => {
                        // The category only: the error's text could quote the URL.
                        debug!(
                            error = err.category(),
                            "claim notices: could not resubscribe yet"
                        );
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut stream).poll_next(cx));
            let message = tokio::select! {
                message = next => message,
                () = tokio::time::sleep(SILENCE) => {
                    // Quiet for a while: a silently dropped link looks just like a quiet
                    // channel, so ask the server. No answer: subscribe afresh.
                    match tokio::time::timeout(DEADLINE, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => continue,
                        Ok(Err(_)) | Err(_) => {
                            debug!("claim notices: the subscription went silent; resubscribing");
                            break;
                        }
                    }
                }
                () = stop.cancelled() => return,
            };
            let Some(message) = message else {
                debug!("claim notices: the subscription closed; resubscribing");
                break;
            };
            if let Some(notice) = parse_notice(message.get_payload_bytes()) {
                notices.send(notice);
            }
        }
    }
}

/// A notice's payload, as the claim script or a manual request publishes it.
fn parse_notice(payload: &[u8]) -> Option<ClaimNotice> {
    ClaimNotice::parse(std::str::from_utf8(payload).ok()?)
}

pub(super) use crate::coordinator::notices::MANUAL_NOTICE;
