//! What a hostile member writes into the fleet's records: markup, terminal escapes (an OSC
//! title change, a carriage return and an erase-line that would print a fake row), bidi
//! overrides. The worker (`--extra hostile`, `--app-version`) and the tests that read the
//! dashboard and the CLI share these texts, so what is checked is exactly what was written.

use std::time::Duration;

use crate::faults::{Fleet, distinct_ticks};

/// The hostile job's name: markup that would swallow the page if it were not escaped (a
/// name may not hold whitespace or control characters, so markup is what it can carry).
pub const JOB: &str = "hostile<svg>";

/// The error the hostile job fails with, every run.
pub const ERROR: &str = "\u{1b}]0;PWNED\u{7}\r\u{1b}[2KFAKE: all jobs succeeded \
                         <img src=x onerror=alert(1)> \u{202e}gnp.exe";

/// The app version the hostile member registers with.
pub const VERSION: &str = "1.0<script>alert(2)</script>\u{1b}[31m\u{202e}red";

/// The hostile member's node id (markup; control and format characters are refused).
pub const NODE: &str = "<b>node</b>";

/// A job name that would be drawn as `jobexe.png`: a bidi override, refused at run time.
pub const BIDI_NAME: &str = "job\u{202e}gnp.exe";

/// A node id with a zero-width space in it (looks like `node-a`), refused at run time.
pub const BIDI_NODE: &str = "node\u{200b}-a";

/// A pause note an operator pastes from a hostile source.
pub const NOTE: &str = "INC\u{1b}]0;T\u{7}<b>bold</b>\u{202e}\r\u{1b}[2K";

/// Who the pause is recorded as (`--by`).
pub const BY: &str = "\u{1b}[2K<i>ops</i>";

/// The `fourit` command's arguments that pause the hostile job with the pasted note, as
/// the requester [`BY`].
pub const PAUSE: [&str; 6] = ["pause", JOB, "--note", NOTE, "--by", BY];

/// Starts the hostile member in `fleet` (node id [`NODE`], version [`VERSION`], the hostile
/// job, and `plain_jobs` ordinary ones, `job-0`...), and waits for 2 ticks of the hostile job.
pub async fn start_member(fleet: &mut Fleet, url: &str, namespace: &str, plain_jobs: usize) {
    let jobs = plain_jobs.to_string();
    let flags = [
        "--jobs",
        &jobs,
        "--extra",
        "hostile",
        "--app-version",
        VERSION,
    ];
    fleet.start_on(NODE, url, namespace, &flags);
    fleet
        .wait_until(
            Duration::from_secs(30),
            "2 ticks of the hostile job",
            |events| distinct_ticks(events, JOB, 0, None) >= 2,
        )
        .await;
}

/// The visible form of `text` the CLI must print: each control or format character as
/// `\u{..}` (lower-case hex), the rest unchanged.
pub fn escaped(text: &str) -> String {
    text.chars()
        .map(|ch| {
            let format = matches!(ch, '\u{202a}'..='\u{202e}' | '\u{200b}'..='\u{200f}');
            if ch.is_control() || format {
                format!("\\u{{{:x}}}", u32::from(ch))
            } else {
                ch.to_string()
            }
        })
        .collect()
}

/// Whether `bytes` (a command's output) hold a byte a terminal acts on: C0 controls other
/// than the line feed, DEL, or a C1 control written as UTF-8 (U+0080..U+009F).
pub fn drives_a_terminal(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.chars().any(|ch| ch != '\n' && ch.is_control()) || text.contains(['\u{202e}', '\u{200b}'])
}
