//! The dashboard's own server (`fourit::dashboard::serve`, what `fourit dashboard` runs)
//! over real sockets: a request that never finishes its head is closed after the header
//! timeout while other clients are served, connections over the caps (one client's, and
//! everyone's) are closed as soon as they are accepted, and a shutdown closes idle
//! connections at once, half-sent ones by their timeout, and returns. Every wait is on a socket's end, never a sleep.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fourit::dashboard::{Dashboard, Limits, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Half a request line: what a slow or hostile client sends and then never finishes.
const HALF_SENT: &[u8] = b"GET / HT";

/// A dashboard of an empty in-process fleet, served within `limits`.
struct Server {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    served: JoinHandle<()>,
}

async fn start(limits: Limits) -> Server {
    let admin = fourit::admin::connect("memory://", "limits")
        .await
        .unwrap_or_else(|e| panic!("memory admin: {e}"));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("listen: {e}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("address: {e}"));
    let (stop, stopped) = oneshot::channel::<()>();
    let router = Dashboard::new(admin).router();
    let served = tokio::spawn(serve(listener, router, limits, async {
        let _ = stopped.await;
    }));
    Server {
        address,
        stop,
        served,
    }
}

/// A connection from `source` (any 127.x.y.z reaches loopback; each is a client of its
/// own) that has sent `bytes`.
async fn open(source: [u8; 4], to: SocketAddr, bytes: &[u8]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
    socket
        .bind(SocketAddr::from((source, 0)))
        .unwrap_or_else(|e| panic!("bind {source:?}: {e}"));
    let mut stream = socket
        .connect(to)
        .await
        .unwrap_or_else(|e| panic!("connect from {source:?}: {e}"));
    stream
        .write_all(bytes)
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    stream
}

/// Waits for the server to close `stream` (its end, or a reset), at most `within`; answers
/// whatever it wrote first.
async fn closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the connection is still open after {within:?}"));
    seen
}

/// Whether the server still holds `stream` open (nothing to read, no end).
fn still_open(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A whole `GET path` from `source`, answered in full.
async fn get(source: [u8; 4], to: SocketAddr, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: {to}\r\nconnection: close\r\n\r\n");
    let mut stream = open(source, to, request.as_bytes()).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no answer in 10 s"))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    String::from_utf8_lossy(&answer).into_owned()
}

/// A connection from `source` that was answered once and is left open (keep-alive).
async fn served_then_idle(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let request = format!("GET /assets/app.js HTTP/1.1\r\nhost: {to}\r\n\r\n");
    let mut stream = open(source, to, request.as_bytes()).await;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .await
        .unwrap_or_else(|e| panic!("the kept-alive answer: {e}"));
    assert_eq!(&head, b"HTTP/1.1 200");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_finishes_its_head_is_closed_after_the_timeout() {
    let timeout = Duration::from_secs(2);
    let server = start(
        Limits::default()
            .header_read_timeout(timeout)
            .max_connections_per_client(64),
    )
    .await;
    // 40 that sent half a request line, 5 that sent nothing at all.
    let mut slow = Vec::new();
    for index in 0..45 {
        let opened = Instant::now();
        let bytes = if index < 40 { HALF_SENT } else { b"" };
        slow.push((opened, open([127, 0, 0, 1], server.address, bytes).await));
    }
    // Meanwhile, a whole request is answered, before any of them could have timed out.
    let first = slow[0].0;
    let page = get([127, 0, 0, 2], server.address, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        first.elapsed() < timeout,
        "the page took longer than the header timeout: the test proves nothing"
    );
    // One served and then idle on keep-alive: its clock starts again after the answer.
    let kept = served_then_idle([127, 0, 0, 3], server.address).await;
    slow.push((Instant::now(), kept));
    for (opened, stream) in &mut slow {
        closed(stream, timeout + Duration::from_secs(5)).await;
        let after = opened.elapsed();
        assert!(
            after >= timeout,
            "closed after {after:?}, before the header timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_are_closed_at_once() {
    // A header timeout far beyond the test: whatever closes here, the caps closed it.
    let timeout = Duration::from_secs(120);
    let server = start(
        Limits::default()
            .header_read_timeout(timeout)
            .max_connections(8)
            .max_connections_per_client(5),
    )
    .await;
    let at_once = Duration::from_secs(5);
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(open([127, 0, 0, 1], server.address, HALF_SENT).await);
    }
    // One client's sixth: closed, unanswered.
    let mut sixth = open([127, 0, 0, 1], server.address, HALF_SENT).await;
    assert!(closed(&mut sixth, at_once).await.is_empty());
    // Another client still gets in, up to 8 in all; a ninth, from a third client, is closed.
    for _ in 0..3 {
        held.push(open([127, 0, 0, 2], server.address, HALF_SENT).await);
    }
    let mut ninth = open([127, 0, 0, 3], server.address, HALF_SENT).await;
    assert!(closed(&mut ninth, at_once).await.is_empty());
    // The 8 are still held: refusing the others closed none of them.
    assert!(held.iter().all(still_open), "a held connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_closes_idle_connections_at_once_and_half_sent_ones_by_the_timeout() {
    let timeout = Duration::from_secs(2);
    let server = start(Limits::default().header_read_timeout(timeout)).await;
    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(open([127, 0, 0, 1], server.address, b"").await);
    }
    let mut half = open([127, 0, 0, 1], server.address, HALF_SENT).await;
    // Served once, then idle on keep-alive.
    let mut kept = served_then_idle([127, 0, 0, 1], server.address).await;
    let _ = server.stop.send(());
    for stream in idle.iter_mut().chain([&mut kept]) {
        closed(stream, timeout).await;
    }
    assert!(
        opened.elapsed() < timeout,
        "the idle connections waited for the header timeout"
    );
    closed(&mut half, timeout + Duration::from_secs(5)).await;
    tokio::time::timeout(Duration::from_secs(5), server.served)
        .await
        .unwrap_or_else(|_| panic!("serve still running after its connections closed"))
        .unwrap_or_else(|e| panic!("serve: {e}"));
}
