//! The claim notices on Postgres: `LISTEN` on a connection of its own, which reconnects with
//! backoff when it closes, fails to connect within the deadline, or goes silent.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Config};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{CHANNEL, DEADLINE};
use crate::coordinator::{ClaimNotice, NoticeSender};

/// How long the listening connection may stay quiet before the server is asked (an empty
/// query) whether the session still stands: a silently dropped link looks like a quiet
/// channel.
const SILENCE: Duration = Duration::from_secs(5);

/// Listens on a connection of its own, reconnecting with backoff, until `stop`; `listening`
/// turns true once the first `LISTEN` is in place.
pub(super) async fn listen(
    config: Config,
    connector: MakeRustlsConnect,
    namespace: String,
    notices: NoticeSender,
    listening: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let connected = tokio::select! {
            connected = tokio::time::timeout(DEADLINE, config.connect(connector.clone())) => connected,
            () = stop.cancelled() => return,
        };
        match connected {
            Ok(Ok((client, mut connection))) => {
                backoff = Duration::from_millis(200);
                let deliver =
                    |message: Option<Result<AsyncMessage, tokio_postgres::Error>>| match message {
                        Some(Ok(AsyncMessage::Notification(n))) => {
                            if let Some(notice) = parse_notice(&namespace, n.payload()) {
                                notices.send(notice);
                            }
                            true
                        }
                        Some(Ok(_)) => true,
                        Some(Err(_)) | None => false,
                    };
                let session = async {
                    // Messages must be polled while a query is sent: the connection's task
                    // is this loop.
                    let command = format!("LISTEN {CHANNEL}");
                    let listen = client.batch_execute(&command);
                    tokio::pin!(listen);
                    let mut listened = false;
                    // An empty query in flight: `Some(true)` answered, `Some(false)` failed,
                    // `None` unanswered within the deadline.
                    let mut ping: Option<Pin<Box<dyn Future<Output = Option<bool>> + Send + '_>>> =
                        None;
                    loop {
                        let quiet = tokio::time::sleep(SILENCE);
                        tokio::select! {
                            result = &mut listen, if !listened => {
                                if result.is_err() {
                                    return "LISTEN failed";
                                }
                                listened = true;
                                listening.send_replace(true);
                            }
                            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => {
                                if !deliver(message) {
                                    return "the listening connection closed";
                                }
                            }
                            () = quiet, if listened && ping.is_none() => {
                                let query = tokio::time::timeout(DEADLINE, client.simple_query(""));
                                ping = Some(Box::pin(async move {
                                    query.await.ok().map(|answer| answer.is_ok())
                                }));
                            }
                            answer = async {
                                match ping.as_mut() {
                                    Some(ping) => ping.await,
                                    None => std::future::pending().await,
                                }
                            }, if ping.is_some() => {
                                ping = None;
                                match answer {
                                    Some(true) => {}
                                    Some(false) => return "the listening connection failed",
                                    None => return "the listening connection went silent",
                                }
                            }
                        }
                    }
                };
                tokio::select! {
                    why = session => debug!("claim notices: {why}; listening again"),
                    () = stop.cancelled() => return,
                }
            }
            Ok(Err(err)) => debug!(error = %err, "claim notices: could not connect yet"),
            Err(_) => debug!("claim notices: connecting timed out"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// `ns<TAB><tick> <job>` or `ns<TAB>manual <job>`, for this namespace only.
pub(super) fn parse_notice(namespace: &str, payload: &str) -> Option<ClaimNotice> {
    let (ns, rest) = payload.split_once('\t')?;
    if ns != namespace {
        return None;
    }
    ClaimNotice::parse(rest)
}
