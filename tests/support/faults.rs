//! What the fault tests share: a [`Fleet`] of `worker` processes whose stdout lines arrive as
//! timestamped [`Event`]s, the workers' run [`Records`], a job's history stream, tick
//! arithmetic ([`tick_report`]) and an in-process log capture ([`LogBuffer`]).
//!
//! Nothing is mocked: workers are real OS processes of the `worker` binary (its path comes
//! from the test, `env!("CARGO_BIN_EXE_worker")`), killed with real signals, against a real
//! `redis-server`. Every wait has a deadline and panics with the fleet's recent lines and
//! logs when it passes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The host's wall clock in UTC milliseconds (the unit of ticks).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One line a worker printed on stdout, or the end of its stdout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `ready`: the scheduler is built and about to run.
    Ready,
    /// `ran JOB TICK NODE`: a body started (and its run was recorded).
    Ran {
        /// The job.
        job: String,
        /// The tick, UTC ms.
        tick: i64,
    },
    /// `cancelled JOB TICK NODE`: a body saw its context cancelled.
    Cancelled {
        /// The job.
        job: String,
        /// The tick, UTC ms.
        tick: i64,
    },
    /// `done JOB TICK NODE`: a body returned normally.
    Done {
        /// The job.
        job: String,
        /// The tick, UTC ms.
        tick: i64,
    },
    /// The worker's stdout closed: it exited.
    Closed,
    /// Anything else.
    Other(String),
}

impl Line {
    fn parse(text: &str) -> Line {
        let words: Vec<&str> = text.split_whitespace().collect();
        let job_tick = |job: &str, tick: &str| tick.parse().ok().map(|t| (job.to_string(), t));
        match words.as_slice() {
            ["ready"] => Line::Ready,
            [kind, job, tick, _node] => match (*kind, job_tick(job, tick)) {
                ("ran", Some((job, tick))) => Line::Ran { job, tick },
                ("cancelled", Some((job, tick))) => Line::Cancelled { job, tick },
                ("done", Some((job, tick))) => Line::Done { job, tick },
                _ => Line::Other(text.to_string()),
            },
            _ => Line::Other(text.to_string()),
        }
    }
}

/// A line from one worker, with when the test received it.
#[derive(Clone, Debug)]
pub struct Event {
    /// The worker's node id.
    pub node: String,
    /// When the test read the line (monotonic).
    pub at: Instant,
    /// When the test read the line (host wall clock, UTC ms).
    pub wall_ms: i64,
    /// What it said.
    pub line: Line,
}

impl Event {
    /// The tick of a `ran` line of `job`.
    pub fn ran(&self, job: &str) -> Option<i64> {
        match &self.line {
            Line::Ran { job: j, tick } if j == job => Some(*tick),
            _ => None,
        }
    }
}

/// How many distinct ticks of `job` started in `events` since `since_ms` (test host time),
/// on `node` if given: what the fleet tests wait for.
pub fn distinct_ticks(events: &[Event], job: &str, since_ms: i64, node: Option<&str>) -> usize {
    events
        .iter()
        .filter(|e| e.wall_ms >= since_ms && node.is_none_or(|n| e.node == n))
        .filter_map(|e| e.ran(job))
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// One worker process.
#[derive(Debug)]
pub struct Worker {
    /// Its node id (`--node`).
    pub node: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
    exit: Option<ExitStatus>,
}

impl Worker {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child
            .id()
            .unwrap_or_else(|| panic!("worker {} has already been reaped", self.node))
    }

    /// SIGKILL, as a crash: waits until the process is gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        self.exit = self.child.wait().await.ok();
    }

    /// Sends SIGTERM (a graceful shutdown request) and returns at once.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap_or_else(|err| panic!("running kill: {err}"));
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Waits up to `within` for the process to exit; `None` if it still runs then.
    pub async fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = tokio::time::timeout(within, self.child.wait())
                .await
                .ok()
                .and_then(Result::ok);
        }
        self.exit
    }

    /// Its exit status if it has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Polls its stderr until a line contains every one of `needles`; returns that line.
    /// Panics after `within`.
    pub async fn wait_for_log(&self, within: Duration, needles: &[&str]) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.stderr();
            if let Some(line) = text
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
            {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "{} logged no line with {needles:?} within {within:?}; stderr:\n{text}",
                self.node
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything it wrote to stderr so far (its tracing logs).
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Worker processes started by one test, and every line they printed.
pub struct Fleet {
    bin: String,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    workers: Vec<Worker>,
    events: Vec<Event>,
}

impl Fleet {
    /// A fleet of the worker binary at `bin` (`env!("CARGO_BIN_EXE_worker")`).
    pub fn new(bin: &str) -> Fleet {
        let (tx, rx) = mpsc::unbounded_channel();
        Fleet {
            bin: bin.to_string(),
            tx,
            rx,
            workers: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Starts a worker on the Redis at `url` under `namespace`, with more `flags`: the usual
    /// case of [`start`](Self::start).
    pub fn start_on(&mut self, node: &str, url: &str, namespace: &str, flags: &[&str]) {
        let mut args = vec!["--url", url, "--namespace", namespace];
        args.extend_from_slice(flags);
        self.start(node, &args);
    }

    /// Starts one worker per node of `nodes` on `url` under `namespace`: `jobs` jobs every
    /// second with 5 ms bodies, each run recorded on the plain Redis at `record_url` (a cut
    /// or failed-over coordinator must not lose the records), logging as `rust_log` says.
    pub fn start_recording(
        &mut self,
        nodes: &[&str],
        url: &str,
        namespace: &str,
        jobs: usize,
        record_url: &str,
        rust_log: &str,
    ) {
        let jobs = jobs.to_string();
        for node in nodes {
            let args = [
                "--url",
                url,
                "--namespace",
                namespace,
                "--jobs",
                &jobs,
                "--body-ms",
                "5",
                "--record-url",
                record_url,
            ];
            self.start_with_env(node, &args, &[("RUST_LOG", rust_log)]);
        }
    }

    /// Starts a worker with `--node node` and `args` (at least `--url`). Its stdout lines
    /// become events; its stderr is kept (see [`Worker::stderr`]). Killed when dropped.
    pub fn start(&mut self, node: &str, args: &[&str]) {
        self.start_with_env(node, args, &[]);
    }

    /// [`start`](Self::start), with more environment variables for the worker (for example
    /// libfaketime's, to step its clock).
    pub fn start_with_env(&mut self, node: &str, args: &[&str], env: &[(&str, &str)]) {
        let mut child = Command::new(&self.bin)
            .args(["--node", node])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("starting the worker binary {}: {err}", self.bin));
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            let tx = self.tx.clone();
            let node = node.to_string();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(text)) = lines.next_line().await {
                    let event = Event {
                        node: node.clone(),
                        at: Instant::now(),
                        wall_ms: now_ms(),
                        line: Line::parse(&text),
                    };
                    if tx.send(event).is_err() {
                        return;
                    }
                }
                let _ = tx.send(Event {
                    node,
                    at: Instant::now(),
                    wall_ms: now_ms(),
                    line: Line::Closed,
                });
            });
        }
        if let Some(err) = child.stderr.take() {
            let buffer = stderr.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(text)) = lines.next_line().await {
                    let mut buffer = buffer.lock().unwrap_or_else(PoisonError::into_inner);
                    buffer.push_str(&text);
                    buffer.push('\n');
                }
            });
        }
        self.workers.push(Worker {
            node: node.to_string(),
            child,
            stderr,
            exit: None,
        });
    }

    /// The worker started as `node`.
    pub fn worker(&mut self, node: &str) -> &mut Worker {
        self.workers
            .iter_mut()
            .find(|w| w.node == node)
            .unwrap_or_else(|| panic!("no worker {node}"))
    }

    /// Every worker.
    pub fn workers(&mut self) -> &mut [Worker] {
        &mut self.workers
    }

    /// Every event received so far, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// `(tick, node)` of every `ran` line of `job` so far, in arrival order.
    pub fn ran(&self, job: &str) -> Vec<(i64, String)> {
        self.events
            .iter()
            .filter_map(|e| e.ran(job).map(|tick| (tick, e.node.clone())))
            .collect()
    }

    /// Receives lines until `done(all events so far)` holds; panics after `within`.
    pub async fn wait_until(
        &mut self,
        within: Duration,
        what: &str,
        mut done: impl FnMut(&[Event]) -> bool,
    ) {
        let deadline = Instant::now() + within;
        while !done(&self.events) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(event)) => self.events.push(event),
                Ok(None) => unreachable!("the fleet holds a sender"),
                Err(_) => panic!(
                    "waited {within:?} for {what}, in vain.\n{}",
                    self.diagnostics()
                ),
            }
        }
    }

    /// Receives lines until one not seen before matches; panics after `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        mut matches: impl FnMut(&Event) -> bool,
    ) -> Event {
        let mut seen = self.events.len();
        self.wait_until(within, what, |events| {
            let found = events[seen..].iter().any(&mut matches);
            seen = events.len();
            found
        })
        .await;
        self.events
            .last()
            .cloned()
            .unwrap_or_else(|| unreachable!("a match was found"))
    }

    /// Receives lines for `span` (a deliberate fault window, not a wait for an event).
    pub async fn watch(&mut self, span: Duration) {
        let deadline = Instant::now() + span;
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.events.push(event);
        }
    }

    /// Every worker's stderr, each under a header.
    pub fn stderr(&self) -> String {
        let mut out = String::new();
        for worker in &self.workers {
            out.push_str(&format!(
                "--- stderr of {} ---\n{}",
                worker.node,
                worker.stderr()
            ));
        }
        out
    }

    /// The last lines received and the tail of each worker's stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        let recent: Vec<String> = self
            .events
            .iter()
            .rev()
            .take(30)
            .rev()
            .map(|e| format!("{} {}: {:?}", e.wall_ms, e.node, e.line))
            .collect();
        let mut out = format!("last lines:\n{}\n", recent.join("\n"));
        for worker in &self.workers {
            let text = worker.stderr();
            let tail: String = text
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            out.push_str(&format!(
                "--- stderr of {} (tail) ---\n{tail}\n",
                worker.node
            ));
        }
        out
    }

    /// SIGTERM to every worker still running; each must exit with success within `within`.
    pub async fn stop_all(&mut self, within: Duration) {
        for worker in &mut self.workers {
            if worker.exited().is_none() {
                worker.terminate();
            }
        }
        let mut failures = Vec::new();
        for worker in &mut self.workers {
            match worker.wait(within).await {
                Some(status) if status.success() => {}
                Some(status) if status.code().is_none() => {} // killed by the test
                other => failures.push(format!("{}: {other:?}", worker.node)),
            }
        }
        assert!(
            failures.is_empty(),
            "workers did not exit cleanly within {within:?} of SIGTERM: {failures:?}\n{}",
            self.diagnostics()
        );
    }

    /// Panics if any worker has exited (they must survive the fault), or printed a panic.
    pub fn assert_all_running(&mut self) {
        self.assert_all_running_but("");
    }

    /// Like [`Fleet::assert_all_running`], for every worker but `killed`.
    pub fn assert_all_running_but(&mut self, killed: &str) {
        let mut exited = Vec::new();
        for worker in self.workers.iter_mut().filter(|w| w.node != killed) {
            if let Some(status) = worker.exited() {
                exited.push(format!("{} ({status})", worker.node));
            }
        }
        let panicked = self.stderr().contains("panicked at");
        assert!(
            exited.is_empty() && !panicked,
            "workers exited: {exited:?}; a panic printed: {panicked}\n{}",
            self.diagnostics()
        );
    }
}

/// A run a worker recorded (`NS-record:log`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The job.
    pub job: String,
    /// The tick, UTC ms.
    pub tick: i64,
    /// Who ran it.
    pub node: String,
}

/// A run whose body returned (`NS-record:spans`), with host wall-clock start and end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The job.
    pub job: String,
    /// The tick, UTC ms.
    pub tick: i64,
    /// Who ran it.
    pub node: String,
    /// When the body started, UTC ms.
    pub start_ms: i64,
    /// When it returned, UTC ms.
    pub end_ms: i64,
}

/// A run start stamped by the recording Redis's clock (`NS-record:starts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// The job.
    pub job: String,
    /// The tick, UTC ms.
    pub tick: i64,
    /// Who ran it.
    pub node: String,
    /// When the body recorded its start, by Redis's clock, UTC ms.
    pub redis_ms: i64,
}

impl Start {
    /// How late the run started after its tick, by Redis's clock (negative: early).
    pub fn late_ms(&self) -> i64 {
        self.redis_ms - self.tick
    }
}

/// What the workers of namespace `ns` recorded in Redis.
#[derive(Clone, Debug, Default)]
pub struct Records {
    /// Every recorded run start, in order.
    pub runs: Vec<Run>,
    /// Every run start with Redis's time, in order.
    pub starts: Vec<Start>,
    /// Every body that returned, in order.
    pub spans: Vec<Span>,
}

impl Records {
    /// Reads `ns-record:log`, `ns-record:starts` and `ns-record:spans`.
    pub async fn read(conn: &mut redis::aio::MultiplexedConnection, namespace: &str) -> Records {
        let list = |key: String| {
            let mut conn = conn.clone();
            async move {
                redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
                    .unwrap_or_else(|err| panic!("LRANGE {key}: {err}"))
            }
        };
        let runs = list(format!("{namespace}-record:log"))
            .await
            .iter()
            .map(
                |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [job, tick, node] => Run {
                        job: job.to_string(),
                        tick: tick.parse().unwrap_or_else(|_| panic!("bad record {line}")),
                        node: node.to_string(),
                    },
                    _ => panic!("bad record {line}"),
                },
            )
            .collect();
        let starts = list(format!("{namespace}-record:starts"))
            .await
            .iter()
            .map(
                |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [job, tick, node, redis_ms] => Start {
                        job: job.to_string(),
                        tick: tick.parse().unwrap_or_else(|_| panic!("bad start {line}")),
                        node: node.to_string(),
                        redis_ms: redis_ms
                            .parse()
                            .unwrap_or_else(|_| panic!("bad start {line}")),
                    },
                    _ => panic!("bad start {line}"),
                },
            )
            .collect();
        let spans = list(format!("{namespace}-record:spans"))
            .await
            .iter()
            .map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                let number = |i: usize| -> i64 {
                    words
                        .get(i)
                        .and_then(|w| w.parse().ok())
                        .unwrap_or_else(|| panic!("bad span {line}"))
                };
                Span {
                    job: words[0].to_string(),
                    tick: number(1),
                    node: words[2].to_string(),
                    start_ms: number(3),
                    end_ms: number(4),
                }
            })
            .collect();
        Records {
            runs,
            starts,
            spans,
        }
    }

    /// The nodes that ran each tick of `job`.
    pub fn ticks(&self, job: &str) -> BTreeMap<i64, Vec<String>> {
        let mut ticks: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for run in self.runs.iter().filter(|r| r.job == job) {
            ticks.entry(run.tick).or_default().push(run.node.clone());
        }
        ticks
    }
}

/// Each job's runs as recorded, printed, with no tick run twice (asserted): answers each
/// job's missed ticks at or after `since_ms`.
pub fn assert_no_double_runs(records: &Records, jobs: &[&str], since_ms: i64) -> Vec<Vec<i64>> {
    jobs.iter()
        .map(|job| {
            let report = tick_report(&records.ticks(job), 1000);
            let missed: Vec<i64> = report
                .missing
                .iter()
                .copied()
                .filter(|tick| *tick >= since_ms)
                .collect();
            eprintln!(
                "{job}: {} ticks, doubles {:?}, missed since {since_ms}: {missed:?}",
                report.ran, report.doubles
            );
            assert_eq!(report.doubles, vec![], "{job}: ticks that ran twice");
            missed
        })
        .collect()
}

/// What a sequence of ticks shows, from its first to its last run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// The first tick that ran.
    pub first: i64,
    /// The last tick that ran.
    pub last: i64,
    /// How many distinct ticks ran.
    pub ran: usize,
    /// Ticks that ran more than once, with their nodes.
    pub doubles: Vec<(i64, Vec<String>)>,
    /// Ticks between the first and the last that did not run.
    pub missing: Vec<i64>,
}

/// Checks ticks every `step_ms` (aligned on the first one) for double runs and gaps.
pub fn tick_report(ticks: &BTreeMap<i64, Vec<String>>, step_ms: i64) -> TickReport {
    let (Some(first), Some(last)) = (ticks.keys().next(), ticks.keys().next_back()) else {
        return TickReport::default();
    };
    let missing = (*first..=*last)
        .step_by(usize::try_from(step_ms).unwrap_or(1000))
        .filter(|tick| !ticks.contains_key(tick))
        .collect();
    TickReport {
        first: *first,
        last: *last,
        ran: ticks.len(),
        doubles: ticks
            .iter()
            .filter(|(_, nodes)| nodes.len() > 1)
            .map(|(tick, nodes)| (*tick, nodes.clone()))
            .collect(),
        missing,
    }
}

/// A job's history stream `ns:{job}:runs`, oldest first, each entry as its fields.
pub async fn history(
    conn: &mut redis::aio::MultiplexedConnection,
    namespace: &str,
    job: &str,
) -> Vec<HashMap<String, String>> {
    let key = format!("{namespace}:{{{job}}}:runs");
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap_or_else(|err| panic!("XRANGE {key}: {err}"));
    entries.into_iter().map(|(_, fields)| fields).collect()
}

/// Polls a job's history until `done(entries)` holds; panics after `within`.
pub async fn wait_for_history(
    conn: &mut redis::aio::MultiplexedConnection,
    namespace: &str,
    job: &str,
    within: Duration,
    mut done: impl FnMut(&[HashMap<String, String>]) -> bool,
) -> Vec<HashMap<String, String>> {
    let deadline = Instant::now() + within;
    loop {
        let entries = history(conn, namespace, job).await;
        if done(&entries) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "{job}'s history did not get there within {within:?}: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tracing capture for in-process schedulers: every event at every level, as plain text.
///
/// [`LogBuffer::install`] sets it as the *thread's* default subscriber, so it sees what runs
/// on that thread only: use it in a current-thread runtime (`#[tokio::test]`), where every
/// task of the scheduler runs on the test's thread and other tests' logs stay out.
#[derive(Clone, Debug, Default)]
pub struct LogBuffer {
    text: Arc<Mutex<Vec<u8>>>,
    /// Woken on every write, for [`LogBuffer::wait_until`].
    written: Arc<tokio::sync::Notify>,
}

impl LogBuffer {
    /// Installs the capture for this thread until the guard drops.
    #[must_use = "the capture ends when the guard is dropped"]
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(self.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap_or_else(PoisonError::into_inner))
            .into_owned()
    }

    /// Waits until `ready` holds for the captured text, checking it whenever a line is
    /// written; fails naming `what` if that takes longer than `within`.
    pub async fn wait_until(&self, within: Duration, what: &str, ready: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let written = self.written.notified();
            tokio::pin!(written);
            // Registered before the check, so a line written in between still wakes us.
            written.as_mut().enable();
            let text = self.text();
            if ready(&text) {
                return;
            }
            if tokio::time::timeout_at(deadline, written).await.is_err() {
                panic!("{what} did not happen within {within:?}; the log:\n{text}");
            }
        }
    }
}

/// The writer of one log line into a [`LogBuffer`].
#[derive(Debug)]
pub struct LogWriter(LogBuffer);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        self.0.written.notify_waiters();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.clone())
    }
}
