//! A wall clock a test sets, for the servers it starts: [`FakeClock`] owns a file holding a
//! frozen instant (`<seconds>.<millis>` since the epoch, UTC), and answers the environment
//! that makes a server read its time from that file.
//!
//! - PostgreSQL runs under libfaketime (Debian's `faketime` package):
//!   [`FakeClock::libfaketime_env`] (`LD_PRELOAD`, `FAKETIME_TIMESTAMP_FILE`,
//!   `FAKETIME_FMT=%s`, `FAKETIME_NO_CACHE=1`, `FAKETIME_DONT_FAKE_MONOTONIC=1`).
//!   libfaketime 0.9.10 takes milliseconds in the frozen time (`1798761600.250`, and also
//!   `2027-01-01 00:00:00.250` in the default format), and `clock_timestamp()` and `now()`
//!   follow every rewrite of the file.
//! - `redis-server` cannot: Debian's links jemalloc, whose initialisation calls
//!   `clock_gettime` while libfaketime initialises ("Unexpected recursive calls to
//!   clock_gettime() without proper initialization"), and the server never starts, whatever
//!   the variant (`libfaketimeMT`, `FAKETIME_FORCE_MONOTONIC_FIX`, preloading jemalloc first).
//!   [`FakeClock::redis_env`] preloads instead a shim of this crate's own, compiled once per
//!   machine with `cc`: it answers `clock_gettime(CLOCK_REALTIME*)`, `gettimeofday` and `time`
//!   from the same file with raw system calls only (no allocation, so no recursion), and
//!   passes every other clock (monotonic: the event loop's timers) to the kernel. Redis's
//!   `TIME`, key expiry (`PX`, lazy expiry on access and the active expiry cycle) then follow
//!   the file.
//!
//! The file is rewritten atomically (a rename), so a reader never sees half an instant.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The shim's source (see the module's documentation).
const SHIM_SOURCE: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The faked time, in microseconds since the epoch, from the file FOURIT_FAKE_CLOCK_FILE
   names ("<seconds>[.<fraction>]"); -1 if there is none. */
static long long fake_us(void) {
    static const char *path;
    if (!path) {
        path = getenv("FOURIT_FAKE_CLOCK_FILE");
        if (!path) return -1;
    }
    long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[64];
    long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    long long secs = 0, frac = 0;
    int i = 0, digits = 0;
    for (; buf[i] >= '0' && buf[i] <= '9'; i++) secs = secs * 10 + (buf[i] - '0');
    if (i == 0) return -1;
    if (buf[i] == '.') {
        for (i++; buf[i] >= '0' && buf[i] <= '9' && digits < 6; i++, digits++)
            frac = frac * 10 + (buf[i] - '0');
    }
    for (; digits < 6; digits++) frac *= 10;
    return secs * 1000000 + frac;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    if (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE) {
        long long us = fake_us();
        if (us >= 0) {
            ts->tv_sec = us / 1000000;
            ts->tv_nsec = (us % 1000000) * 1000;
            return 0;
        }
    }
    return syscall(SYS_clock_gettime, id, ts);
}

int gettimeofday(struct timeval *tv, void *tz) {
    long long us = fake_us();
    if (us < 0) return syscall(SYS_gettimeofday, tv, tz);
    if (tv) {
        tv->tv_sec = us / 1000000;
        tv->tv_usec = us % 1000000;
    }
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
"#;

/// The environment variable the shim reads the file's path from.
const SHIM_FILE_VAR: &str = "FOURIT_FAKE_CLOCK_FILE";

/// A frozen wall clock in a file, which the test moves ([`set_ms`](Self::set_ms)) and the
/// servers it starts with [`redis_env`](Self::redis_env) or
/// [`libfaketime_env`](Self::libfaketime_env) read. Dropping it removes the file.
#[derive(Debug)]
pub struct FakeClock {
    dir: PathBuf,
    file: PathBuf,
}

impl FakeClock {
    /// How far past the millisecond the frozen instant is (µs; see [`set_ms`](Self::set_ms)).
    pub const PAST_MS_US: i64 = 100;

    /// A clock frozen at `ms` (UTC milliseconds), in a fresh directory anyone may read (the
    /// PostgreSQL server runs as its own user).
    pub fn new(ms: i64) -> Result<FakeClock, String> {
        let dir = crate::try_fresh_dir("fourit-clock")?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let clock = FakeClock {
            file: dir.join("now"),
            dir,
        };
        clock.set_ms(ms)?;
        Ok(clock)
    }

    /// Sets the frozen time to `ms` (UTC milliseconds), atomically.
    ///
    /// The file holds the instant plus [`FakeClock::PAST_MS_US`] µs: libfaketime reads the
    /// fraction as a `double`, in which `1803945602.010` is `1803945602.00999..`, so a
    /// PostgreSQL frozen exactly on the millisecond would answer the one before. Readers
    /// therefore see `ms` exactly in milliseconds, and `ms * 1000 + 100` (give or take a
    /// rounding of libfaketime's) in microseconds.
    pub fn set_ms(&self, ms: i64) -> Result<(), String> {
        let partial = self.dir.join("now.partial");
        let text = format!(
            "{}.{:03}{:03}\n",
            ms.div_euclid(1000),
            ms.rem_euclid(1000),
            FakeClock::PAST_MS_US
        );
        fs::write(&partial, text).map_err(|e| format!("{}: {e}", partial.display()))?;
        fs::rename(&partial, &self.file).map_err(|e| format!("{}: {e}", self.file.display()))
    }

    /// Removes the file: the shim's servers follow the real clock until the next
    /// [`set_ms`](Self::set_ms) (a Redis Cluster forms only once its nodes' clocks have moved
    /// on by a couple of seconds, `CLUSTER_WRITABLE_DELAY`, which a frozen clock never does).
    pub fn unfreeze(&self) -> Result<(), String> {
        match fs::remove_file(&self.file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.file.display())),
        }
    }

    /// The file holding the frozen time.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The environment that runs a program under libfaketime, frozen at this clock (its
    /// monotonic clock left alone).
    pub fn libfaketime_env(&self) -> Result<Vec<(String, String)>, String> {
        Ok(vec![
            ("LD_PRELOAD".into(), libfaketime()?.display().to_string()),
            (
                "FAKETIME_TIMESTAMP_FILE".into(),
                self.file.display().to_string(),
            ),
            ("FAKETIME_FMT".into(), "%s".into()),
            ("FAKETIME_NO_CACHE".into(), "1".into()),
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ])
    }

    /// The environment that runs `redis-server` on this clock, through this crate's shim
    /// (libfaketime cannot start a jemalloc-linked server; see the module's documentation).
    pub fn redis_env(&self) -> Result<Vec<(String, String)>, String> {
        Ok(vec![
            ("LD_PRELOAD".into(), shim()?.display().to_string()),
            (SHIM_FILE_VAR.into(), self.file.display().to_string()),
        ])
    }
}

impl Drop for FakeClock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// libfaketime's library, from Debian's `faketime` package.
fn libfaketime() -> Result<PathBuf, String> {
    fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")])
        .find(|path| path.exists())
        .ok_or_else(|| {
            "libfaketime.so.1 not found: install Debian's `faketime` package (./test does)"
                .to_string()
        })
}

/// The shim's library, compiled on first use into a directory named after its source, so
/// every test process on the machine shares one build.
fn shim() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build_shim).clone()
}

fn build_shim() -> Result<PathBuf, String> {
    // A fixed hash (FNV-1a, not the randomised std one): every process names the same
    // directory.
    let hash = SHIM_SOURCE
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let dir = std::env::temp_dir().join(format!("fourit-fake-clock-{hash:016x}"));
    let library = dir.join("libfourit_fake_clock.so");
    if library.exists() {
        return Ok(library);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let unique = format!("{}-{}", std::process::id(), crate::try_free_port()?);
    let source = dir.join(format!("shim-{unique}.c"));
    let partial = dir.join(format!("shim-{unique}.so"));
    fs::write(&source, SHIM_SOURCE).map_err(|e| format!("{}: {e}", source.display()))?;
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&partial)
        .arg(&source)
        .output()
        .map_err(|e| format!("compiling the fake clock's shim with cc: {e}"))?;
    let _ = fs::remove_file(&source);
    if !built.status.success() {
        return Err(format!(
            "compiling the fake clock's shim: {}",
            String::from_utf8_lossy(&built.stderr)
        ));
    }
    // Another process may have built it meanwhile: the rename replaces it with the same.
    fs::rename(&partial, &library).map_err(|e| format!("{}: {e}", library.display()))?;
    Ok(library)
}
