//! A `fourit dashboard` process for the tests: started with the real binary, its address
//! read from the line it prints, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `fourit dashboard`.
#[derive(Debug)]
pub struct DashboardProcess {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The line it printed first (where it listens, what is protected).
    pub first_line: String,
}

impl DashboardProcess {
    /// Starts `bin dashboard --listen 127.0.0.1:0 EXTRA...` for `url` and `namespace`, and
    /// waits for the line that says where it listens.
    pub fn start(bin: &str, url: &str, namespace: &str, extra: &[&str]) -> DashboardProcess {
        let mut child = Command::new(bin)
            .args([
                "--url",
                url,
                "--namespace",
                namespace,
                "dashboard",
                "--listen",
            ])
            .arg("127.0.0.1:0")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} dashboard: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("the dashboard's stdout"));
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading the dashboard's first line: {e}"));
        let address = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        DashboardProcess {
            child,
            address,
            first_line: line,
        }
    }

    /// `http://ADDRESS` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for DashboardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
