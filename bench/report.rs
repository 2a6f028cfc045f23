//! What the benchmark prints and writes: tables, the targets with whether each is met, the
//! fourit/peer ratios, and the JSON file.

use serde_json::{Map, Value, json};

/// One target of the performance issue, measured.
#[derive(Clone, Debug)]
pub struct Target {
    /// The scenario (`start-delay`, `burst`...).
    pub scenario: String,
    /// What is measured, e.g. `p50 start delay`.
    pub figure: String,
    /// The target, e.g. `<= 1.5 ms`.
    pub target: String,
    /// The measured value, as text.
    pub measured: String,
    /// Met, missed, or `None` where the figure is a baseline with no target.
    pub met: Option<bool>,
}

/// One figure measured for fourit and the peer in the same run.
#[derive(Clone, Debug)]
pub struct Ratio {
    /// What is compared, e.g. `start delay p50 (ms)`.
    pub figure: String,
    /// fourit's value.
    pub fourit: f64,
    /// The peer's value.
    pub peer: f64,
}

impl Ratio {
    /// fourit / peer, or `None` if the peer's value is zero.
    pub fn ratio(&self) -> Option<f64> {
        (self.peer != 0.0).then(|| self.fourit / self.peer)
    }
}

/// Everything measured so far.
#[derive(Default)]
pub struct Report {
    /// Per-scenario JSON, in run order.
    pub scenarios: Map<String, Value>,
    /// The targets.
    pub targets: Vec<Target>,
    /// fourit/peer comparisons.
    pub ratios: Vec<Ratio>,
    /// Notes (skipped parts, unreliable measurements).
    pub notes: Vec<String>,
}

impl Report {
    /// Records a target.
    pub fn target(
        &mut self,
        scenario: &str,
        figure: &str,
        target: &str,
        measured: String,
        met: Option<bool>,
    ) {
        self.targets.push(Target {
            scenario: scenario.to_string(),
            figure: figure.to_string(),
            target: target.to_string(),
            measured,
            met,
        });
    }

    /// Records a fourit/peer comparison.
    pub fn ratio(&mut self, figure: &str, fourit: f64, peer: f64) {
        self.ratios.push(Ratio {
            figure: figure.to_string(),
            fourit,
            peer,
        });
    }

    /// Records a note, and prints it.
    pub fn note(&mut self, note: String) {
        println!("  note: {note}");
        self.notes.push(note);
    }

    /// Prints the targets and the ratios.
    pub fn print_summary(&self) {
        if !self.targets.is_empty() {
            let rows: Vec<Vec<String>> = self
                .targets
                .iter()
                .map(|t| {
                    vec![
                        t.scenario.clone(),
                        t.figure.clone(),
                        t.target.clone(),
                        t.measured.clone(),
                        match t.met {
                            Some(true) => "met".to_string(),
                            Some(false) => "MISSED".to_string(),
                            None => "baseline".to_string(),
                        },
                    ]
                })
                .collect();
            table(
                "Targets",
                &["scenario", "figure", "target", "measured", ""],
                &rows,
            );
        }
        if !self.ratios.is_empty() {
            let rows: Vec<Vec<String>> = self
                .ratios
                .iter()
                .map(|r| {
                    vec![
                        r.figure.clone(),
                        number(r.fourit),
                        number(r.peer),
                        r.ratio().map_or("-".to_string(), |x| format!("{x:.2}")),
                    ]
                })
                .collect();
            table(
                "fourit vs node-cron 4.6 (same run)",
                &["figure", "fourit", "node-cron", "fourit/node-cron"],
                &rows,
            );
        }
    }

    /// The whole report as JSON.
    pub fn json(&self, header: Value) -> Value {
        json!({
            "run": header,
            "scenarios": self.scenarios,
            "targets": self.targets.iter().map(|t| json!({
                "scenario": t.scenario,
                "figure": t.figure,
                "target": t.target,
                "measured": t.measured,
                "met": t.met,
            })).collect::<Vec<_>>(),
            "fourit_vs_peer": self.ratios.iter().map(|r| json!({
                "figure": r.figure,
                "fourit": r.fourit,
                "peer": r.peer,
                "ratio": r.ratio(),
            })).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

/// A number with few digits: `12.3`, `0.84`, `1234`.
pub fn number(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Prints a titled table with aligned columns.
pub fn table(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("  {}", padded.join("  ").trim_end());
    };
    println!("\n{title}");
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for row in rows {
        line(row);
    }
}
