//! The operator's surfaces under a hostile member and a careless operator: a real worker
//! whose job name, error text, node id and app version carry markup, terminal escapes and
//! bidi overrides, a real `redis-server`, the real `fourit` command. Every human output of
//! the command prints that text escaped (byte for byte: no control byte reaches the
//! terminal), `--json` keeps it exact, and a typo'd job name is an error (exit 4), never a
//! pause of nothing.

use std::process::Output;
use std::time::Duration;

use fourit_tests::RedisServer;
use fourit_tests::cli::{Cli, stderr, stdout};
use fourit_tests::faults::Fleet;
use fourit_tests::hostile::{self, drives_a_terminal, escaped};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const FOURIT: &str = env!("CARGO_BIN_EXE_fourit-for-tests");

/// The command's output, checked: nothing in it can drive a terminal.
fn clean(args: &[&str], output: &Output) -> String {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(
            !drives_a_terminal(bytes),
            "fourit {args:?} wrote terminal control to {stream}: {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    stdout(output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_text_never_drives_the_terminal_and_a_typo_is_an_error() {
    let server = RedisServer::start();
    let url = server.url();
    let namespace = "hostile";
    let mut fleet = Fleet::new(WORKER);
    hostile::start_member(&mut fleet, &url, namespace, 1).await;
    let cli = Cli::new(FOURIT, &url, namespace);
    let run = |args: &[&str]| {
        let output = cli.run(args);
        let text = clean(args, &output);
        (output, text)
    };

    // History: the error escaped in the table, exact in the JSON.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let history = cli.json(&["history", hostile::JOB, "--json"]);
        if history[0]["outcome"] == "failed" {
            assert_eq!(history[0]["detail"], hostile::ERROR, "--json is exact");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{history}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, table) = run(&["history", hostile::JOB]);
    assert!(table.contains(&escaped(hostile::ERROR)), "{table}");
    assert!(table.contains(hostile::NODE), "{table}");
    let (_, status) = run(&["status"]);
    assert!(status.contains(hostile::JOB), "{status}");

    // Members: the version escaped; exact in the JSON.
    let (_, members) = run(&["members"]);
    assert!(members.contains(&escaped(hostile::VERSION)), "{members}");
    assert_eq!(
        cli.json(&["members", "--json"])[0]["version"],
        hostile::VERSION
    );

    // A manual run that fails with the hostile error: exit 1, the error escaped.
    let (waited, text) = run(&["trigger", hostile::JOB, "--wait", "--by", hostile::BY]);
    assert_eq!(waited.status.code(), Some(1), "{text}{}", stderr(&waited));
    assert!(text.contains(&escaped(hostile::ERROR)), "{text}");
    assert!(text.contains(&escaped(hostile::BY)), "{text}");

    // A pause with a pasted note: escaped wherever it is printed, exact in the JSON.
    let (paused, text) = run(&hostile::PAUSE);
    assert!(paused.status.success(), "{}", stderr(&paused));
    assert!(text.contains(&escaped(hostile::BY)), "{text}");
    let (_, text) = run(&["paused", hostile::JOB]);
    assert!(
        text.contains(&escaped(hostile::NOTE)) && text.contains(&escaped(hostile::BY)),
        "{text}"
    );
    let state = cli.json(&["paused", hostile::JOB, "--json"]);
    assert_eq!(
        (state["note"].as_str(), state["by"].as_str()),
        (Some(hostile::NOTE), Some(hostile::BY))
    );
    let (resumed, text) = run(&["resume", hostile::JOB]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(text.contains(&escaped(hostile::BY)), "{text}");

    // A typo is an error: nothing paused, exit 4 like trigger, history and remove.
    for verb in ["pause", "resume", "trigger", "history", "remove"] {
        let (typo, _) = run(&[verb, "job-O"]);
        assert_eq!(typo.status.code(), Some(4), "{verb}: {}", stderr(&typo));
    }
    assert!(stderr(&cli.run(&["pause", "job-O"])).contains("--force"));
    assert_eq!(cli.json(&["paused", "job-O", "--json"])["paused"], false);
    // --force pauses a job before its first deploy, on purpose.
    let (ahead, _) = run(&["pause", "not-deployed-yet", "--force"]);
    assert!(ahead.status.success(), "{}", stderr(&ahead));
    assert_eq!(
        cli.json(&["paused", "not-deployed-yet", "--json"])["paused"],
        true
    );
    assert!(cli.run(&["resume", "not-deployed-yet"]).status.success());
    // A note over the documented 4 kB: refused with the limit, nothing paused.
    let long = "n".repeat(4097);
    let (refused, _) = run(&["pause", "job-0", "--note", &long]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("4096"), "{}", stderr(&refused));
    assert_eq!(cli.json(&["paused", "job-0", "--json"])["paused"], false);

    fleet.assert_all_running();
    fleet.stop_all(Duration::from_secs(20)).await;
}
