//! What a scenario hands back: its figures, ratios, targets, method notes and plots, in the
//! shape `results.json` stores and `report.md` renders.

use serde::Serialize;

use super::stats::{Collector, Metric, Ratio};

/// One of the targets, checked against a measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What the issue asks, e.g. "QUIC link throughput >= 0.8x plain TCP at 1 KiB".
    pub goal: String,
    /// The measured value, as text with its unit.
    pub measured: String,
    /// `None` when it was not measured in this run.
    pub met: Option<bool>,
    /// How far from the goal, e.g. "+12 %" or "missed by 2.6 RTT".
    pub margin: String,
}

/// One plot of every figure named `metric`: a title and the file stem (`<stem>.svg`,
/// `<stem>.png` in the output directory).
#[derive(Debug, Clone, Serialize)]
pub struct Plot {
    pub title: String,
    pub stem: String,
    pub metric: String,
}

/// Everything one scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub title: String,
    /// How it was measured (topology, durations, repetitions, corrections), one point a line.
    pub method: Vec<String>,
    pub metrics: Vec<Metric>,
    pub ratios: Vec<Ratio>,
    pub targets: Vec<Target>,
    /// The reading: where QUIC wins, where it does not, what costs what.
    pub notes: Vec<String>,
    pub plots: Vec<Plot>,
    pub seconds: f64,
}

impl ScenarioResult {
    pub fn new(name: &str, title: &str) -> ScenarioResult {
        ScenarioResult {
            name: name.to_owned(),
            title: title.to_owned(),
            method: Vec::new(),
            metrics: Vec::new(),
            ratios: Vec::new(),
            targets: Vec::new(),
            notes: Vec::new(),
            plots: Vec::new(),
            seconds: 0.0,
        }
    }

    /// Takes every figure of `collector`, and the ratios asked for: (name, numerator,
    /// denominator) for each case that has `name`.
    pub fn absorb(&mut self, collector: &Collector, ratios: &[(&str, &str, &str)]) {
        self.metrics = collector.metrics();
        for (name, numerator, denominator) in ratios {
            for case in collector.cases(name) {
                if let Some(r) = collector.ratio(&case, name, numerator, denominator) {
                    self.ratios.push(r);
                }
            }
        }
    }

    /// Asks for a plot of every figure named `metric`.
    pub fn plot(&mut self, stem: &str, metric: &str, title: &str) {
        self.plots.push(Plot {
            title: title.into(),
            stem: stem.into(),
            metric: metric.into(),
        });
    }

    /// The median of one figure, if it was measured.
    pub fn median(&self, case: &str, variant: &str, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|m| m.case == case && m.variant == variant && m.name == name)
            .map(|m| m.figure.median)
    }

    /// The median of one ratio, if it was measured.
    pub fn ratio_median(
        &self,
        case: &str,
        name: &str,
        numerator: &str,
        denominator: &str,
    ) -> Option<f64> {
        self.ratios
            .iter()
            .find(|r| {
                r.case == case
                    && r.name == name
                    && r.numerator == numerator
                    && r.denominator == denominator
            })
            .map(|r| r.figure.median)
    }

    /// Adds a target "measured >= goal" (or <= when `at_most`), with the margin in percent.
    pub fn target_ratio(&mut self, goal: &str, measured: Option<f64>, bound: f64, at_most: bool) {
        let Some(value) = measured else {
            self.targets.push(Target {
                goal: goal.into(),
                measured: "not measured".into(),
                met: None,
                margin: "-".into(),
            });
            return;
        };
        let met = if at_most {
            value <= bound
        } else {
            value >= bound
        };
        let margin = format!("{:+.0} % vs the bound", (value / bound - 1.0) * 100.0);
        self.targets.push(Target {
            goal: goal.into(),
            measured: format!("{value:.2}x"),
            met: Some(met),
            margin,
        });
    }
}

/// The whole `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub command: String,
    pub machine: super::system::Machine,
    pub quick: bool,
    pub started_unix: u64,
    pub scenarios: Vec<ScenarioResult>,
    /// Scenarios asked for but not run, with why.
    pub skipped: Vec<(String, String)>,
}
