//! `sessions`: many client sessions on one node. QUIC: streams on a few connections; TCP: a
//! connection each, up to the fd limit. Memory per session, time to connect, fan-out
//! deliveries/s; each repetition in a fresh child process.

use std::time::Duration;

use serde_json::Value as Json;

use super::scale::{human, tcp_ceiling};
use crate::bench::stats::Collector;
use crate::bench::{worker, Ctx, Error, ScenarioResult};

/// QUIC connections the sessions are spread over.
const QUIC_CONNECTIONS: usize = 4;

fn field(json: &Json, key: &str) -> f64 {
    json.get(key).and_then(Json::as_f64).unwrap_or(f64::NAN)
}

pub async fn run(ctx: &Ctx) -> Result<ScenarioResult, Error> {
    let configs: Vec<(&str, usize)> = if ctx.quick {
        vec![("quic", 2000), ("tcp", 2000), ("quic", 10_000)]
    } else {
        vec![
            ("quic", 2000),
            ("tcp", 2000),
            ("quic", 10_000),
            ("quic", 50_000),
            ("tcp", tcp_ceiling()),
        ]
    };
    let mut c = Collector::default();
    let mut errors = Vec::new();
    let bar = ctx.bar("sessions", (ctx.reps() * configs.len()) as u64);
    for rep in 0..ctx.reps() {
        for (variant, n) in &configs {
            bar.set_message(format!("rep {} {variant} {}", rep + 1, human(*n)));
            let json = worker::spawn(
                &format!("sessions:{variant}:{n}:{QUIC_CONNECTIONS}"),
                Duration::from_secs(900),
            )
            .await?;
            let case = format!("{} sessions", human(*n));
            let joined = field(&json, "joined");
            c.push(&case, variant, "sessions joined", "sessions", joined);
            c.push(
                &case,
                variant,
                "time to connect all",
                "s",
                field(&json, "connect_seconds"),
            );
            c.push(
                &case,
                variant,
                "sessions/s",
                "1/s",
                joined / field(&json, "connect_seconds"),
            );
            c.push(
                &case,
                variant,
                "RSS per session",
                "KiB",
                (field(&json, "rss_sessions") - field(&json, "rss_start"))
                    / joined.max(1.0)
                    / 1024.0,
            );
            c.push(
                &case,
                variant,
                "fds per session",
                "fds",
                (field(&json, "fds_sessions") - field(&json, "fds_start")) / joined.max(1.0),
            );
            c.push(
                &case,
                variant,
                "fan-out deliveries/s",
                "1/s",
                field(&json, "fanout_deliveries_per_sec"),
            );
            if let Some(e) = json.get("first_error").and_then(Json::as_str) {
                errors.push(format!(
                    "{variant} {}: joined {joined}, first error: {e}",
                    human(*n)
                ));
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let mut result = ScenarioResult::new("sessions", "Many client sessions on one node");
    result.absorb(
        &c,
        &[
            ("RSS per session", "quic", "tcp"),
            ("fan-out deliveries/s", "quic", "tcp"),
            ("sessions/s", "quic", "tcp"),
        ],
    );
    result.method = vec![
        format!("Each repetition runs in a fresh child process holding one node and all its clients. QUIC sessions are streams spread over {QUIC_CONNECTIONS} connections; TCP sessions have a connection each. {} joins run at once; every session subscribes to one topic.", 256),
        "RSS per session = (VmRSS after joining and 1 s idle − VmRSS before) / sessions: it covers the router's session AND the in-process client session (both sides), so it is an upper bound for the router alone.".into(),
        format!("fds per session counts /proc/self/fd (a TCP session shows 2: client and router end). TCP is measured up to {} sessions (the fd limit / 2 with a margin).", human(tcp_ceiling())),
        "Fan-out: a publisher sends enough 64-byte events that about a million deliveries are made (between 5 and 500 events); deliveries per second until all arrived.".into(),
    ];
    result.plot(
        "sessions-rss",
        "RSS per session",
        "Resident memory per client session (KiB, client + router)",
    );
    result.plot(
        "sessions-fanout",
        "fan-out deliveries/s",
        "Fan-out deliveries/s",
    );
    let most = result.median("50k sessions", "quic", "sessions joined");
    result.targets.push(crate::bench::Target {
        goal: "50k sessions on one node".into(),
        measured: most.map_or_else(
            || "not measured (--quick runs 10k)".into(),
            |j| format!("{j:.0} QUIC sessions joined"),
        ),
        met: most.map(|j| j >= 50_000.0),
        margin: most.map_or_else(|| "-".into(), |j| format!("{:+.0} sessions", j - 50_000.0)),
    });
    result.notes.extend(errors);
    for (variant, n) in &configs {
        let case = format!("{} sessions", human(*n));
        if let (Some(rss), Some(t), Some(f)) = (
            result.median(&case, variant, "RSS per session"),
            result.median(&case, variant, "time to connect all"),
            result.median(&case, variant, "fan-out deliveries/s"),
        ) {
            result.notes.push(format!("{variant}, {case}: {rss:.1} KiB per session (client + router), {t:.1} s to connect all, {f:.0} fan-out deliveries/s."));
        }
    }
    Ok(result)
}
