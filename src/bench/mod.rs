//! `wampmesh bench`: QUIC router links (a stream per realm on one connection) measured against
//! RawSocket over TCP and over TLS (a connection per realm), with real nodes on 127.0.0.1.
//!
//! `run` takes a scenario name (or `all`, or a comma-separated list), runs each scenario and
//! writes `results.json`, `report.md` and the plots (SVG and PNG) into the output directory
//! after every scenario, so a long run that fails late keeps what it measured.
//!
//! | file | owns |
//! |---|---|
//! | `scenarios/` | one file per scenario: what is measured and how it is read |
//! | `fixture.rs` | bench nodes, links between them, clients over TCP and QUIC |
//! | `load.rs` | workloads: windowed publisher, open-loop probe, echo callee, callers |
//! | `worker.rs` | scenarios measured in a child process (clean RSS and fd counts) |
//! | `stats.rs` | repetitions -> median/min/max; ratios paired by repetition |
//! | `results.rs`, `report.rs`, `plot.rs` | results.json, report.md, SVG/PNG plots |
//! | `system.rs` | /proc readings: RSS, fds, machine description |

mod fixture;
mod load;
mod plot;
mod report;
mod results;
mod scenarios;
mod stats;
mod system;
mod worker;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub use results::{Results, ScenarioResult, Target};
pub use stats::{Figure, Metric, Ratio};

/// The bench's error: anything that stops a scenario, with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Settings every scenario reads.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub quick: bool,
    pub out: PathBuf,
}

impl Ctx {
    /// Repetitions of every measurement: 5, or 3 with `--quick`.
    pub fn reps(&self) -> usize {
        if self.quick {
            3
        } else {
            5
        }
    }

    /// `quick` or `full` seconds, as a duration.
    pub fn secs(&self, quick: f64, full: f64) -> Duration {
        Duration::from_secs_f64(if self.quick { quick } else { full })
    }

    /// A progress bar of `steps` steps on stderr (hidden when stderr is not a terminal).
    pub fn bar(&self, name: &str, steps: u64) -> ProgressBar {
        let bar = ProgressBar::new(steps);
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(name.to_owned());
        bar
    }
}

/// Runs `scenario` (a name, `all`, or names separated by commas) and writes the results into
/// `out`.
pub async fn run(scenario: &str, quick: bool, out: &Path) -> Result<(), Error> {
    if let Some(spec) = scenario.strip_prefix(worker::PREFIX) {
        return worker::run(spec, out).await;
    }
    let names: Vec<&str> = if scenario == "all" {
        scenarios::ALL.to_vec()
    } else {
        scenario
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    };
    for name in &names {
        if !scenarios::ALL.contains(name) {
            return Err(format!(
                "unknown scenario {name:?}; known: {}, all",
                scenarios::ALL.join(", ")
            )
            .into());
        }
    }
    std::fs::create_dir_all(out)?;
    let ctx = Ctx {
        quick,
        out: out.to_owned(),
    };
    let mut results = Results {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: system::Machine::read(),
        quick,
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        scenarios: Vec::new(),
        skipped: Vec::new(),
    };
    for name in names {
        let started = Instant::now();
        eprintln!("bench: {name} ({})", if quick { "quick" } else { "full" });
        let load_before = system::load_average();
        match scenarios::run(name, &ctx).await {
            Ok(mut result) => {
                result.seconds = started.elapsed().as_secs_f64();
                result.method.push(format!(
                    "Machine load (1-minute load average, /proc/loadavg) before / after: {load_before:.2} / {:.2} on {} cores; above ~1, other processes competed for the CPU during the run.",
                    system::load_average(),
                    results.machine.nproc
                ));
                result.notes.extend(plot::draw(&result, out));
                print_summary(&result);
                results.scenarios.push(result);
            }
            Err(e) => {
                eprintln!("bench: {name} failed: {e}");
                results
                    .skipped
                    .push((name.to_owned(), format!("failed: {e}")));
            }
        }
        write(&results, out)?;
    }
    println!(
        "bench: wrote {}/report.md, results.json and plots",
        out.display()
    );
    if results.skipped.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} scenario(s) failed; see report.md",
            results.skipped.len()
        )
        .into())
    }
}

fn write(results: &Results, out: &Path) -> Result<(), Error> {
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    std::fs::write(out.join("report.md"), report::render(results))?;
    Ok(())
}

/// The scenario's tables and targets on stdout.
fn print_summary(result: &ScenarioResult) {
    println!("\n== {} ({:.0} s)", result.title, result.seconds);
    for m in &result.metrics {
        println!(
            "  {:<22} {:<14} {:<18} {:>24} {}",
            m.case,
            m.variant,
            m.name,
            report::cell(&m.figure),
            m.unit
        );
    }
    for r in &result.ratios {
        let f = &r.figure;
        println!(
            "  {:<22} {:>6}/{:<7} {:<18} {:.2}x ({:.2}–{:.2})",
            r.case, r.numerator, r.denominator, r.name, f.median, f.min, f.max
        );
    }
    for t in &result.targets {
        println!(
            "  target: {} -> {} ({}, {})",
            t.goal,
            t.measured,
            match t.met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not measured",
            },
            t.margin
        );
    }
}
