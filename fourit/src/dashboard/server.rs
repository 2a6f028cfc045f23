//! Serving the dashboard on its own socket, with limits a careless or hostile client cannot
//! get around: a request's head must arrive within [`Limits::header_read_timeout`], and
//! connections are counted (all of them, and per client) so a flood of idle sockets cannot
//! hold the server. `axum::serve` has neither, so the accept loop is written here, over
//! hyper's HTTP/1 connection with a timer.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service as _, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a client may take to send a request's line and headers, by default.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How many connections are served at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// How many of them one client may hold, by default.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 32;

/// The limits [`serve`] keeps. The defaults suit a dashboard a few operators read; behind a
/// reverse proxy every connection comes from the proxy's address, so raise
/// [`max_connections_per_client`](Self::max_connections_per_client) to
/// [`max_connections`](Self::max_connections) there.
///
/// ```
/// use std::time::Duration;
/// let limits = fourit::dashboard::Limits::default()
///     .header_read_timeout(Duration::from_secs(5))
///     .max_connections_per_client(8);
/// # let _ = limits;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    header_read_timeout: Duration,
    max_connections: usize,
    max_connections_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        }
    }
}

impl Limits {
    /// A connection whose request line and headers are not all in after `timeout` is
    /// closed (default [`DEFAULT_HEADER_READ_TIMEOUT`]). The clock starts when the server
    /// waits for a request: on a new connection, and on a kept-alive one after each answer,
    /// so an idle connection is closed after `timeout` too.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Limits {
        self.header_read_timeout = timeout;
        self
    }

    /// At most `count` connections at once (at least 1; default
    /// [`DEFAULT_MAX_CONNECTIONS`]); a connection over it is closed as soon as it is
    /// accepted, before anything is read.
    pub fn max_connections(mut self, count: usize) -> Limits {
        self.max_connections = count.max(1);
        self
    }

    /// At most `count` connections at once from one client (at least 1; default
    /// [`DEFAULT_MAX_CONNECTIONS_PER_CLIENT`]): one IPv4 address, or one IPv6 /64 (what one
    /// host is usually given); over it, closed as soon as accepted.
    pub fn max_connections_per_client(mut self, count: usize) -> Limits {
        self.max_connections_per_client = count.max(1);
        self
    }
}

/// Serves `router` (a [`Dashboard::router`](super::Dashboard::router), or an app it is
/// mounted in) on `listener` over HTTP/1.1 within `limits`, until `shutdown` completes;
/// then accepts no more, lets each connection finish the request it is answering (an idle
/// one is closed at once, a half-sent one when its header timeout passes), and returns when
/// all are closed. Each request
/// carries the client's [`ConnectInfo<SocketAddr>`](ConnectInfo), so failed logins are
/// counted per client.
///
/// Failures to accept are logged and retried (after 1 s when the process is out of file
/// descriptors); a connection's own errors (a client gone, a head too slow) end that
/// connection only, logged at DEBUG.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use fourit::dashboard::{Dashboard, Limits, serve};
/// let admin = fourit::admin::connect("redis://127.0.0.1:6379", "fourit").await?;
/// let router = Dashboard::new(admin).token("a-long-random-token").router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// serve(listener, router, Limits::default(), async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await;
/// # Ok(())
/// # }
/// ```
pub async fn serve<F>(listener: TcpListener, router: Router, limits: Limits, shutdown: F)
where
    F: Future<Output = ()> + Send,
{
    let gate = Gate {
        all: Arc::new(Semaphore::new(limits.max_connections)),
        clients: Arc::default(),
        per_client: limits.max_connections_per_client,
    };
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        let Some(slot) = gate.admit(peer.ip()) else {
            tracing::debug!(%peer, "dashboard connection closed: over the connection limits");
            drop(stream);
            continue;
        };
        connections.spawn(connection(
            http.clone(),
            stream,
            peer,
            router.clone(),
            stop.clone(),
            slot,
        ));
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

/// One connection, served until it ends or the server stops.
async fn connection(
    http: http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    stop: CancellationToken,
    slot: Slot,
) {
    let app = TowerToHyperService::new(router);
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.call(request)
    });
    let mut served = Box::pin(http.serve_connection(TokioIo::new(stream), service));
    let ended = tokio::select! {
        ended = served.as_mut() => Some(ended),
        () = stop.cancelled() => None,
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            served.as_mut().graceful_shutdown();
            served.as_mut().await
        }
    };
    if let Err(err) = ended {
        tracing::debug!(%peer, error = %err, "dashboard connection ended");
    }
    // The slot is free before the socket closes: a client that sees its connection closed
    // can count on the room it held.
    drop(slot);
    drop(served);
}

/// An accept that failed: the client's own trouble is skipped; anything else (no file
/// descriptors left) is logged and waited out, as a busy loop would not help.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %err, "the dashboard cannot accept a connection; trying again in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Who may come in: a permit of all connections, and a count per client.
struct Gate {
    all: Arc<Semaphore>,
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_client: usize,
}

impl Gate {
    /// A slot for a connection from `ip`, or `None` when either cap is reached.
    fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let permit = self.all.clone().try_acquire_owned().ok()?;
        let client = client_of(ip);
        {
            let mut counts = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            let count = counts.entry(client).or_insert(0);
            if *count >= self.per_client {
                return None;
            }
            *count += 1;
        }
        Some(Slot {
            _permit: permit,
            clients: self.clients.clone(),
            client,
        })
    }
}

/// A connection's room under both caps, given back when dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// The client an address counts for: an IPv4 address (an IPv4-mapped IPv6 one read as
/// IPv4), or an IPv6 /64, as one host usually holds a whole /64.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::{Gate, client_of};
    use std::net::IpAddr;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn one_ipv6_host_counts_once_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            client_of(ip("2001:db8::1")),
            client_of(ip("2001:db8::ffff:2"))
        );
        assert_ne!(
            client_of(ip("2001:db8::1")),
            client_of(ip("2001:db8:0:1::1"))
        );
        assert_eq!(client_of(ip("::ffff:10.0.0.7")), ip("10.0.0.7"));
        assert_eq!(client_of(ip("10.0.0.7")), ip("10.0.0.7"));
    }

    #[test]
    fn both_caps_hold_and_a_closed_connection_gives_its_room_back() {
        let gate = Gate {
            all: Arc::new(Semaphore::new(3)),
            clients: Arc::default(),
            per_client: 2,
        };
        let a = ip("10.0.0.1");
        let first = gate.admit(a);
        let second = gate.admit(a);
        assert!(first.is_some() && second.is_some());
        assert!(gate.admit(a).is_none(), "a third from one client");
        let other = gate.admit(ip("10.0.0.2"));
        assert!(other.is_some());
        assert!(gate.admit(ip("10.0.0.3")).is_none(), "a fourth in all");
        drop(first);
        assert!(gate.admit(a).is_some(), "room given back");
        drop(other);
        drop(second);
        let counts = gate.clients.lock().unwrap_or_else(|e| e.into_inner());
        assert!(counts.is_empty(), "{counts:?}");
    }
}
