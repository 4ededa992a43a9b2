//! `local`: one node, no link. Events/s and calls/s between clients on the same node, over
//! RawSocket TCP and over QUIC streams, with call latency at 1 and 64 calls in flight.

use std::time::Instant;

use crate::bench::fixture::{Pair, REALM};
use crate::bench::load::{self, Background, Window};
use crate::bench::stats::Collector;
use crate::bench::{Ctx, Error, ScenarioResult};
use crate::client::Session;

const VARIANTS: [&str; 2] = ["tcp", "quic"];
const EVENT_SIZE: usize = 64;

struct Clients {
    variant: &'static str,
    publisher: Session,
    counter: std::sync::Arc<load::Counter>,
    caller: Session,
    _subscriber: Session,
    _callee: Session,
}

pub async fn run(ctx: &Ctx) -> Result<ScenarioResult, Error> {
    let pair = Pair::start("local").await?;
    let background = Background::default();
    let outcome = measure(ctx, &pair, &background).await;
    background.stop().await;
    pair.shutdown().await;
    outcome
}

async fn connect(pair: &Pair, variant: &str) -> Result<Session, Error> {
    match variant {
        "quic" => pair.quic_client(&pair.a, REALM).await,
        _ => pair.tcp_client(&pair.a, REALM).await,
    }
}

async fn clients(
    pair: &Pair,
    background: &Background,
    variant: &'static str,
    epoch: Instant,
) -> Result<Clients, Error> {
    let (topic, procedure) = (
        format!("bench.local.{variant}"),
        format!("bench.echo.{variant}"),
    );
    let subscriber = connect(pair, variant).await?;
    let counter = load::subscribe_counting(background, &subscriber, &topic, false, epoch).await?;
    let callee = connect(pair, variant).await?;
    load::serve_echo(background, &callee, &procedure).await?;
    let publisher = connect(pair, variant).await?;
    let caller = connect(pair, variant).await?;
    load::prime(&publisher, &topic, &counter, epoch).await?;
    load::wait_callable(&caller, &procedure).await?;
    Ok(Clients {
        variant,
        publisher,
        counter,
        caller,
        _subscriber: subscriber,
        _callee: callee,
    })
}

async fn measure(ctx: &Ctx, pair: &Pair, background: &Background) -> Result<ScenarioResult, Error> {
    let epoch = Instant::now();
    let mut all = Vec::new();
    for variant in VARIANTS {
        all.push(clients(pair, background, variant, epoch).await?);
    }
    let window = Window {
        window: 1024,
        warmup: ctx.secs(0.3, 0.5),
        measure: ctx.secs(1.0, 3.0),
    };
    let (warmup, calls_for) = (ctx.secs(0.3, 0.5), ctx.secs(1.0, 2.0));
    let body = load::body(EVENT_SIZE);
    let mut c = Collector::default();
    let bar = ctx.bar("local", (ctx.reps() * VARIANTS.len()) as u64);
    for rep in 0..ctx.reps() {
        for i in 0..all.len() {
            // Alternate which variant goes first, so drift does not favour one.
            let clients = &all[(i + rep) % all.len()];
            let v = clients.variant;
            bar.set_message(format!("rep {} {v}", rep + 1));
            let cpu = crate::bench::system::cpu_seconds();
            let before = clients.counter.count();
            let topic = format!("bench.local.{v}");
            let pumped = load::pump(
                &clients.publisher,
                &topic,
                &body,
                &clients.counter,
                window,
                epoch,
            )
            .await?;
            let events = (clients.counter.count() - before).max(1) as f64;
            c.push("events 64 B", v, "events/s", "1/s", pumped.rate);
            c.push(
                "events 64 B",
                v,
                "CPU per event",
                "µs",
                (crate::bench::system::cpu_seconds() - cpu) * 1e6 / events,
            );
            let procedure = format!("bench.echo.{v}");
            for concurrency in [1usize, 64] {
                let case = format!("calls {concurrency} in flight");
                let stats = load::call_load(
                    &clients.caller,
                    &procedure,
                    concurrency,
                    &body,
                    warmup,
                    calls_for,
                )
                .await?;
                c.push(&case, v, "calls/s", "1/s", stats.rate);
                c.push(
                    &case,
                    v,
                    "p50 latency",
                    "µs",
                    load::us(stats.corrected.value_at_quantile(0.5)),
                );
                c.push(
                    &case,
                    v,
                    "p99 latency",
                    "µs",
                    load::us(stats.corrected.value_at_quantile(0.99)),
                );
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let mut result = ScenarioResult::new("local", "Single node: TCP clients vs QUIC clients");
    result.absorb(
        &c,
        &[
            ("events/s", "quic", "tcp"),
            ("calls/s", "quic", "tcp"),
            ("p99 latency", "quic", "tcp"),
            ("CPU per event", "quic", "tcp"),
        ],
    );
    result.method = vec![
        "One node; publisher, subscriber, caller and callee are separate sessions on it, each on its own TCP connection or its own QUIC connection (one stream each). MessagePack.".into(),
        format!(
            "events/s: {EVENT_SIZE}-byte events published with at most {} unacknowledged in flight (so no queue overflows), counted at the subscriber for {:?} after {:?} warm-up.",
            window.window, window.measure, window.warmup
        ),
        format!("calls: 1 or 64 concurrent callers on one session calling an echo procedure back to back for {calls_for:?}; latency from hdrhistogram, corrected for coordinated omission (expected interval = the warm-up's median latency)."),
        "CPU per event: this process's user+system CPU time during the events/s run divided by the events delivered (publisher, router and subscriber together).".into(),
    ];
    result.plot("local-events", "events/s", "Single node: events/s (64 B)");
    result.plot("local-calls", "calls/s", "Single node: calls/s");
    result.plot(
        "local-p99",
        "p99 latency",
        "Single node: p99 call latency (µs, CO-corrected)",
    );
    read(&mut result);
    Ok(result)
}

fn read(result: &mut ScenarioResult) {
    let mut notes = Vec::new();
    for (case, name, better) in [
        ("events 64 B", "events/s", "higher"),
        ("calls 64 in flight", "calls/s", "higher"),
        ("calls 1 in flight", "p99 latency", "lower"),
        ("events 64 B", "CPU per event", "lower"),
    ] {
        if let Some(r) = result.ratio_median(case, name, "quic", "tcp") {
            let wins = if better == "higher" {
                r >= 1.0
            } else {
                r <= 1.0
            };
            notes.push(format!(
                "{case}, {name}: QUIC/TCP = {r:.2}x ({} is better) — {}.",
                better,
                if wins {
                    "QUIC clients are at least as good here"
                } else {
                    "TCP clients are better here"
                }
            ));
        }
    }
    result.notes.extend(notes);
}
