//! A TCP proxy of one's own between a client and a server, to make the network misbehave the
//! way real ones do: pass, add latency, stall (hold every byte and deliver it when the link
//! heals, as TCP's retransmissions do after a partition), drop everything silently with the
//! sockets left open (a middlebox that lost the flow and discards what it carried), or cut
//! every connection.
//!
//! ```no_run
//! # fn demo(upstream: std::net::SocketAddr) {
//! use fourit_testkit::{LinkMode, Proxy};
//! let proxy = Proxy::start(upstream);
//! // Clients connect to proxy.port() instead of the server's port.
//! proxy.set_mode(LinkMode::Drop); // bytes vanish both ways; nobody is told
//! proxy.set_mode(LinkMode::Pass); // what is sent from now on arrives again
//! proxy.cut(); // every open connection is closed (the server's side too)
//! # }
//! ```
//!
//! In both silent modes the proxy's own sockets stay healthy (the kernel acknowledges what it
//! reads), so neither exercises TCP keepalive: what they test is the client's deadlines. After
//! a drop, a client that kept its connection has lost replies and requests mid-stream; after a
//! stall, it receives late answers to calls it gave up on. Only a client that notices (a
//! deadline) and stops trusting that connection works correctly again.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// What the link does with the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    /// Every byte passes at once.
    Pass,
    /// Every byte passes, each chunk `Duration` after it was read (one way).
    Delay(Duration),
    /// Every byte read is thrown away, both ways, and the sockets stay open: no RST, no FIN.
    /// New connections are accepted and go silent too.
    Drop,
    /// Every byte read is held, both ways, and delivered in order once the mode changes: the
    /// sockets stay open. New connections are accepted and go silent too.
    Stall,
}

/// How the mode is stored: 0 is pass, `u64::MAX` drop, `u64::MAX - 1` stall, anything else a
/// delay in µs.
const DROP: u64 = u64::MAX;
const STALL: u64 = u64::MAX - 1;

fn encode(mode: LinkMode) -> u64 {
    match mode {
        LinkMode::Pass => 0,
        LinkMode::Delay(delay) => u64::try_from(delay.as_micros())
            .unwrap_or(STALL - 1)
            .clamp(1, STALL - 1),
        LinkMode::Drop => DROP,
        LinkMode::Stall => STALL,
    }
}

fn decode(mode: u64) -> LinkMode {
    match mode {
        0 => LinkMode::Pass,
        DROP => LinkMode::Drop,
        STALL => LinkMode::Stall,
        micros => LinkMode::Delay(Duration::from_micros(micros)),
    }
}

struct Shared {
    upstream: SocketAddr,
    mode: AtomicU64,
    /// Both sockets of every connection still open, by number, to cut them.
    open: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    stopped: AtomicBool,
    accepted: AtomicU64,
}

/// A proxy on a free loopback port forwarding to `upstream`, in threads of its own. Dropping
/// it closes every connection and stops listening.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("port", &self.port)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .finish()
    }
}

impl Proxy {
    /// Starts passing traffic to `upstream`. Panics if no loopback port can be bound (a test
    /// set-up failure).
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|err| panic!("binding a loopback port for the proxy: {err}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("the proxy's port: {err}"))
            .port();
        let shared = Arc::new(Shared {
            upstream,
            mode: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            stopped: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        thread::spawn(move || accept(listener, accepting));
        Proxy { port, shared }
    }

    /// Starts a proxy to the loopback port `upstream_port`.
    pub fn to_port(upstream_port: u16) -> Proxy {
        Proxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port)))
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the link does now.
    pub fn mode(&self) -> LinkMode {
        decode(self.shared.mode.load(Ordering::Acquire))
    }

    /// Changes what the link does, for bytes read from now on (and for open connections).
    pub fn set_mode(&self, mode: LinkMode) {
        self.shared.mode.store(encode(mode), Ordering::Release);
    }

    /// Closes every open connection, both sides; new connections are accepted as before.
    /// Answers how many were cut.
    pub fn cut(&self) -> usize {
        let open = std::mem::take(
            &mut *self
                .shared
                .open
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (client, server) in open.values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
        open.len()
    }

    /// How many connections the proxy accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.cut();
        // Wake the accepting thread so it sees the stop.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

fn accept(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(2))
        else {
            // The server is down: the client sees its connection closed, as it would.
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let id = shared.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let clones = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        );
        let (Ok(client_tx), Ok(server_tx), Ok(c), Ok(s)) = clones else {
            continue;
        };
        {
            let mut open = shared.open.lock().unwrap_or_else(PoisonError::into_inner);
            // Dropped meanwhile: this connection is closed, not pumped.
            if shared.stopped.load(Ordering::Acquire) {
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                return;
            }
            open.insert(id, (c, s));
        }
        pump(client, server_tx, shared.clone(), Some(id));
        pump(server, client_tx, shared.clone(), None);
    }
}

/// Carries bytes one way, `from` → `to`, as the mode says: a reader thread that drops or
/// timestamps each chunk, a writer thread that sends each when it is due (and not while the
/// link stalls). The pump that owns connection `id` forgets it when its side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: Arc<Shared>, id: Option<u64>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reading = shared.clone();
    let shared = reading.clone();
    thread::spawn(move || {
        let shared = reading;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let due = match decode(shared.mode.load(Ordering::Acquire)) {
                LinkMode::Drop => continue,
                LinkMode::Pass | LinkMode::Stall => Instant::now(),
                LinkMode::Delay(delay) => Instant::now() + delay,
            };
            if tx.send((due, buffer[..read].to_vec())).is_err() {
                break;
            }
        }
        if let Some(id) = id {
            shared
                .open
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
        // Ends the writer, which closes its side of the other socket.
    });
    thread::spawn(move || {
        while let Ok((due, chunk)) = rx.recv() {
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                thread::sleep(wait);
            }
            // Held while the link stalls, in order.
            while decode(shared.mode.load(Ordering::Acquire)) == LinkMode::Stall
                && !shared.stopped.load(Ordering::Acquire)
            {
                thread::sleep(Duration::from_millis(5));
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                thread::spawn(move || {
                    let mut buffer = [0u8; 1024];
                    while let Ok(read) = stream.read(&mut buffer) {
                        if read == 0 || stream.write_all(&buffer[..read]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn round_trip(stream: &mut TcpStream, text: &[u8]) -> Option<Vec<u8>> {
        stream.write_all(text).ok()?;
        let mut answer = vec![0u8; text.len()];
        stream.read_exact(&mut answer).ok()?;
        Some(answer)
    }

    #[test]
    fn passes_delays_drops_silently_and_cuts() {
        let proxy = Proxy::start(echo_server());
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert_eq!(
            round_trip(&mut stream, b"one").as_deref(),
            Some(&b"one"[..])
        );

        proxy.set_mode(LinkMode::Delay(Duration::from_millis(100)));
        let start = Instant::now();
        assert_eq!(
            round_trip(&mut stream, b"two").as_deref(),
            Some(&b"two"[..])
        );
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "both ways delayed"
        );

        proxy.set_mode(LinkMode::Drop);
        assert_eq!(round_trip(&mut stream, b"lost"), None, "nothing comes back");
        proxy.set_mode(LinkMode::Pass);
        // The lost bytes stay lost; what is sent now passes on the same socket.
        assert_eq!(
            round_trip(&mut stream, b"back").as_deref(),
            Some(&b"back"[..])
        );

        proxy.set_mode(LinkMode::Stall);
        assert_eq!(
            round_trip(&mut stream, b"held"),
            None,
            "nothing comes back yet"
        );
        proxy.set_mode(LinkMode::Pass);
        // What was held arrives first, in order.
        let mut late = [0u8; 4];
        stream.read_exact(&mut late).unwrap();
        assert_eq!(&late, b"held");
        assert_eq!(
            round_trip(&mut stream, b"next").as_deref(),
            Some(&b"next"[..])
        );

        assert_eq!(proxy.cut(), 1);
        let mut buffer = [0u8; 4];
        assert!(matches!(stream.read(&mut buffer), Ok(0) | Err(_)), "closed");
        let mut again = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
        again
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert_eq!(round_trip(&mut again, b"new").as_deref(), Some(&b"new"[..]));
        assert_eq!(proxy.accepted(), 2);
    }
}
