//! `report.md`: the command, the machine, the targets with met/missed, and per scenario its
//! method, one table per quantity (median with min–max per variant, then the paired ratios),
//! its plots and the reading of the numbers.

use std::fmt::Write;

use super::plot::short;
use super::results::{Results, ScenarioResult};
use super::stats::Figure;

/// The whole report as Markdown.
pub fn render(results: &Results) -> String {
    let mut md = String::new();
    let m = &results.machine;
    let _ = writeln!(md, "# wampmesh bench report\n");
    let _ = writeln!(md, "Command: `{}`\n", results.command);
    let _ = writeln!(
        md,
        "Machine: {} cores (nproc), kernel {} (uname -r), {}, {:.1} GiB RAM, fd limit {}, TCP congestion control {}; \
         wampmesh {} ({} build{}).\n",
        m.nproc,
        m.kernel,
        m.cpu,
        m.memory_gib,
        m.fd_limit,
        m.tcp_congestion_control,
        m.version,
        m.build,
        m.git_commit.as_deref().map(|c| format!(", commit {c}")).unwrap_or_default()
    );
    let reps = if results.quick {
        "`--quick`: at least 3 repetitions, shorter runs"
    } else {
        "at least 5 repetitions"
    };
    let _ = writeln!(
        md,
        "Every figure is the median of its repetitions ({reps}) with min–max in brackets. Ratios are taken \
         repetition by repetition (QUIC rep i / TCP rep i, measured back to back in this run), then their median. \
         Everything runs in one process on 127.0.0.1 (both nodes, clients and relays share the {} cores), \
         unless a scenario says otherwise.\n",
        m.nproc
    );
    targets(&mut md, results);
    for scenario in &results.scenarios {
        render_scenario(&mut md, scenario);
    }
    if !results.skipped.is_empty() {
        let _ = writeln!(md, "## Not measured\n");
        for (name, why) in &results.skipped {
            let _ = writeln!(md, "- `{name}`: {why}");
        }
        md.push('\n');
    }
    md
}

fn targets(md: &mut String, results: &Results) {
    let rows: Vec<_> = results
        .scenarios
        .iter()
        .flat_map(|s| s.targets.iter().map(move |t| (s, t)))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "## The issue's targets\n");
    let _ = writeln!(
        md,
        "| scenario | target | measured (median) | met | margin |\n|---|---|---|---|---|"
    );
    for (s, t) in rows {
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {met} | {} |",
            s.name, t.goal, t.measured, t.margin
        );
    }
    md.push('\n');
}

/// `median (min–max)`.
pub fn cell(f: &Figure) -> String {
    format!("{} ({}–{})", short(f.median), short(f.min), short(f.max))
}

fn unique<T: PartialEq + Clone>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = Vec::new();
    for v in values {
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen
}

fn render_scenario(md: &mut String, s: &ScenarioResult) {
    let _ = writeln!(md, "## {} (`{}`, {:.0} s)\n", s.title, s.name, s.seconds);
    if !s.method.is_empty() {
        let _ = writeln!(md, "How:\n");
        for line in &s.method {
            let _ = writeln!(md, "- {line}");
        }
        md.push('\n');
    }
    for name in unique(s.metrics.iter().map(|m| m.name.clone())) {
        table(md, s, &name);
    }
    for plot in &s.plots {
        if s.metrics.iter().any(|m| m.name == plot.metric) {
            let _ = writeln!(
                md,
                "![{}]({}.png) ([SVG]({}.svg))\n",
                plot.title, plot.stem, plot.stem
            );
        }
    }
    if !s.notes.is_empty() {
        let _ = writeln!(md, "Reading:\n");
        for note in &s.notes {
            let _ = writeln!(md, "- {note}");
        }
        md.push('\n');
    }
}

/// One table for quantity `name`: a row per case, a column per variant, then its ratios.
fn table(md: &mut String, s: &ScenarioResult, name: &str) {
    let metrics: Vec<_> = s.metrics.iter().filter(|m| m.name == name).collect();
    let unit = metrics.first().map(|m| m.unit.clone()).unwrap_or_default();
    let variants = unique(metrics.iter().map(|m| m.variant.clone()));
    let cases = unique(metrics.iter().map(|m| m.case.clone()));
    let ratios: Vec<_> = s.ratios.iter().filter(|r| r.name == name).collect();
    let ratio_heads = unique(
        ratios
            .iter()
            .map(|r| (r.numerator.clone(), r.denominator.clone())),
    );
    let _ = writeln!(md, "**{name}** ({unit})\n");
    let mut head = String::from("| case |");
    let mut rule = String::from("|---|");
    for v in &variants {
        let _ = write!(head, " {v} |");
        rule.push_str("---|");
    }
    for (n, d) in &ratio_heads {
        let _ = write!(head, " {n}/{d} |");
        rule.push_str("---|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    for case in &cases {
        let mut row = format!("| {case} |");
        for v in &variants {
            let f = metrics.iter().find(|m| &m.case == case && &m.variant == v);
            let _ = write!(row, " {} |", f.map_or("–".to_owned(), |m| cell(&m.figure)));
        }
        for (n, d) in &ratio_heads {
            let r = ratios
                .iter()
                .find(|r| &r.case == case && &r.numerator == n && &r.denominator == d);
            let _ = write!(
                row,
                " {} |",
                r.map_or("–".to_owned(), |r| format!(
                    "{:.2}x ({:.2}–{:.2})",
                    r.figure.median, r.figure.min, r.figure.max
                ))
            );
        }
        let _ = writeln!(md, "{row}");
    }
    md.push('\n');
}
