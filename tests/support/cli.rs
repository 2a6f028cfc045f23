//! The real `fourit` command, run as a process against a fleet's coordinator.

use std::process::{Command, Output};

use serde_json::Value;

/// The `fourit` binary at `bin`, pointed at one URL and namespace, with colour off.
#[derive(Clone, Debug)]
pub struct Cli {
    bin: String,
    url: String,
    namespace: String,
}

impl Cli {
    /// The binary at `bin` (a `CARGO_BIN_EXE_...` path) for the fleet at `url` under
    /// `namespace`.
    pub fn new(bin: &str, url: &str, namespace: &str) -> Cli {
        Cli {
            bin: bin.to_string(),
            url: url.to_string(),
            namespace: namespace.to_string(),
        }
    }

    /// Runs `fourit --url URL --namespace NS ARGS...` and answers what it did.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(["--url", &self.url, "--namespace", &self.namespace])
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin))
    }

    /// Runs it, asserts it succeeded, and answers its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "fourit {args:?} exited {:?}: {}",
            output.status.code(),
            stderr(&output)
        );
        stdout(&output)
    }

    /// Runs it (a `--json` command), asserts it succeeded, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// A command's standard output, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A command's standard error, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
