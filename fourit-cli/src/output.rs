//! How the command prints: aligned tables, relative times, colour only on a terminal.

use std::io::IsTerminal;

/// Whether to colour: on a terminal, unless `NO_COLOR` is set.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    colour: bool,
}

impl Style {
    /// Colour on a terminal without `NO_COLOR`; plain when piped.
    pub fn detect() -> Style {
        Style {
            colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    /// An outcome (escaped as [`shown`]), green for success, red for failures, yellow for
    /// the rest.
    pub fn outcome(self, outcome: &str) -> String {
        let outcome = shown(outcome);
        if !self.colour {
            return outcome;
        }
        let mark = match outcome.as_str() {
            "succeeded" => GREEN,
            "failed" | "panicked" | "timed out" | "lease lost" | "not replicated" => RED,
            _ => YELLOW,
        };
        format!("{mark}{outcome}{PLAIN}")
    }
}

/// Where [`Style::outcome`] colours, marked with Unicode noncharacters (never text, and
/// escaped by [`shown`] wherever fleet text holds one), which [`table`] turns into the
/// terminal's colour codes after escaping everything else: the only escape sequences the
/// command prints are its own.
const GREEN: char = '\u{fdd0}';
const RED: char = '\u{fdd1}';
const YELLOW: char = '\u{fdd2}';
const PLAIN: char = '\u{fdd3}';

// Text from the fleet as the terminal must see it: control and invisible characters written
// out as `\u{1b}` (the dashboard's pages show it the same way).
pub use fourit::admin::shown;

// RFC 3339 with milliseconds, and `3 s ago` / `in 2 min`: the same text as the dashboard's.
pub use fourit::dashboard::json::{relative as ago, rfc3339};

/// Prints `rows` under `headers`, columns aligned (colour codes do not count as width).
/// Cells are text from the fleet: each is escaped as [`shown`]; the marks [`Style::outcome`]
/// left become its colour codes.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escaped_cell(cell)).collect())
        .collect();
    let rows = rows.as_slice();
    let width = |cell: &str| visible(cell).chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(index) {
                *w = (*w).max(width(cell));
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w.saturating_sub(width(cell)))))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The "next" column of `fourit status`: when the next tick is, or that a job whose schedule
/// is known has none (no clock change can cause that; a scheduler that met it logged an
/// error naming the job).
pub fn next_run(next_ms: Option<i64>, has_schedule: bool, now_ms: i64) -> String {
    match next_ms {
        Some(next_ms) => ago(next_ms, now_ms),
        None if has_schedule => "no next tick".to_string(),
        None => String::new(),
    }
}

/// A cell as the terminal gets it: everything escaped as [`shown`], and the marks of
/// [`Style::outcome`] made colour codes (a cell may be an outcome followed by other text:
/// `succeeded 3 s ago on NODE`).
fn escaped_cell(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len());
    for ch in cell.chars() {
        match ch {
            GREEN => out.push_str("\u{1b}[32m"),
            RED => out.push_str("\u{1b}[31m"),
            YELLOW => out.push_str("\u{1b}[33m"),
            PLAIN => out.push_str("\u{1b}[0m"),
            other => {
                let mut one = [0u8; 4];
                out.push_str(&shown(other.encode_utf8(&mut one)));
            }
        }
    }
    out
}

/// The text without ANSI colour codes.
fn visible(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len());
    let mut escape = false;
    for ch in cell.chars() {
        match (escape, ch) {
            (false, '\u{1b}') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, _) => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Style, ago, escaped_cell, next_run, rfc3339, shown, visible};

    #[test]
    fn fleet_text_cannot_drive_the_terminal() {
        let hostile =
            "\u{1b}]0;PWNED\u{7}\r\u{1b}[2KFAKE: all jobs succeeded \u{202e}txt.exe\u{200b}";
        assert_eq!(
            shown(hostile),
            "\\u{1b}]0;PWNED\\u{7}\\u{d}\\u{1b}[2KFAKE: all jobs succeeded \\u{202e}txt.exe\\u{200b}"
        );
        assert_eq!(shown("plain <b>text</b> é ✓"), "plain <b>text</b> é ✓");
        // The command's own colours reach the terminal; any escape in fleet text is written
        // out, a colour code included, even next to an outcome in one cell.
        let coloured = escaped_cell(&Style { colour: true }.outcome("failed"));
        assert_eq!(coloured, "\u{1b}[31mfailed\u{1b}[0m");
        assert_eq!(
            escaped_cell("\u{1b}[32m\u{1b}]0;x\u{7}\u{1b}[0m"),
            "\\u{1b}[32m\\u{1b}]0;x\\u{7}\\u{1b}[0m"
        );
        // `fourit status`'s "last run" cell: the coloured outcome, then more text.
        let last = format!(
            "{} 3 s ago on node\u{1b}[2K",
            Style { colour: true }.outcome("failed")
        );
        assert_eq!(
            escaped_cell(&last),
            "\u{1b}[31mfailed\u{1b}[0m 3 s ago on node\\u{1b}[2K"
        );
        assert_eq!(
            visible(&escaped_cell(&last)),
            "failed 3 s ago on node\\u{1b}[2K"
        );
        // Fleet text holding the marks themselves cannot colour: they are escaped.
        assert_eq!(shown("\u{fdd0}x"), "\\u{fdd0}x");
        assert_eq!(
            escaped_cell(&Style { colour: true }.outcome("\u{1b}[2K")),
            "\u{1b}[33m\\u{1b}[2K\u{1b}[0m"
        );
        assert_eq!(Style { colour: false }.outcome("failed"), "failed");
    }

    #[test]
    fn a_job_without_a_next_tick_says_so() {
        assert_eq!(next_run(Some(120_000), true, 0), "in 2 min");
        assert_eq!(next_run(None, true, 0), "no next tick");
        assert_eq!(next_run(None, false, 0), "");
    }

    #[test]
    fn relative_times_read_like_speech() {
        assert_eq!(ago(1_000, 1_500), "now");
        assert_eq!(ago(0, 3_000), "3 s ago");
        assert_eq!(ago(120_000, 0), "in 2 min");
        assert_eq!(ago(0, 7_200_000), "2 h ago");
        assert_eq!(ago(0, 3 * 86_400_000), "3 d ago");
    }

    #[test]
    fn times_are_rfc3339_utc_and_colour_has_no_width() {
        assert_eq!(
            rfc3339(1_767_225_600_000).as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
        assert_eq!(visible("\u{1b}[32msucceeded\u{1b}[0m"), "succeeded");
    }
}
