//! `rpc`: call latency across one realm link (caller on node a, callee on node b) over a QUIC
//! stream, a TCP connection and a TLS connection, at 1 and 64 calls in flight; p50/p99/p99.9
//! from hdrhistogram corrected for coordinated omission, and calls/s.

use crate::bench::fixture::Pair;
use crate::bench::load::{self, Background};
use crate::bench::stats::Collector;
use crate::bench::{Ctx, Error, ScenarioResult};
use crate::client::Session;

use super::throughput::{linked_realm, LINKS};

const PROCEDURE: &str = "bench.echo";
const CONCURRENCY: [usize; 2] = [1, 64];
const BODY: usize = 64;

pub async fn run(ctx: &Ctx) -> Result<ScenarioResult, Error> {
    let pair = Pair::start("rpc").await?;
    let background = Background::default();
    let outcome = measure(ctx, &pair, &background).await;
    background.stop().await;
    pair.shutdown().await;
    outcome
}

async fn measure(ctx: &Ctx, pair: &Pair, background: &Background) -> Result<ScenarioResult, Error> {
    let mut callers: Vec<(&str, Session, Session)> = Vec::new();
    for (transport, variant) in LINKS {
        let realm = linked_realm(pair, "rpc", transport, variant).await?;
        let callee = pair.tcp_client(&pair.b, &realm).await?;
        load::serve_echo(background, &callee, PROCEDURE).await?;
        let caller = pair.tcp_client(&pair.a, &realm).await?;
        load::wait_callable(&caller, PROCEDURE).await?;
        callers.push((variant, caller, callee));
    }
    let (warmup, duration) = (ctx.secs(0.3, 0.5), ctx.secs(1.0, 2.0));
    let body = load::body(BODY);
    let mut c = Collector::default();
    let bar = ctx.bar(
        "rpc",
        (ctx.reps() * CONCURRENCY.len() * callers.len()) as u64,
    );
    for rep in 0..ctx.reps() {
        for concurrency in CONCURRENCY {
            let case = format!("{concurrency} in flight");
            for i in 0..callers.len() {
                let (variant, caller, _) = &callers[(i + rep) % callers.len()];
                bar.set_message(format!("rep {} {case} {variant}", rep + 1));
                let stats =
                    load::call_load(caller, PROCEDURE, concurrency, &body, warmup, duration)
                        .await?;
                let q = |p: f64| load::us(stats.corrected.value_at_quantile(p));
                c.push(&case, variant, "calls/s", "1/s", stats.rate);
                c.push(&case, variant, "p50 latency", "µs", q(0.5));
                c.push(&case, variant, "p99 latency", "µs", q(0.99));
                c.push(&case, variant, "p99.9 latency", "µs", q(0.999));
                let raw = |p: f64| load::us(stats.raw.value_at_quantile(p));
                c.push(&case, variant, "p50 uncorrected", "µs", raw(0.5));
                c.push(&case, variant, "p99 uncorrected", "µs", raw(0.99));
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let mut result = ScenarioResult::new("rpc", "Call latency across one realm link");
    let mut ratios = Vec::new();
    for name in ["calls/s", "p50 latency", "p99 latency", "p99.9 latency"] {
        ratios.push((name, "quic", "tcp"));
        ratios.push((name, "quic", "tls"));
    }
    result.absorb(&c, &ratios);
    result.method = vec![
        "Caller on node a, echo callee on node b (RawSocket TCP clients, MessagePack, 64-byte argument); the call and its result cross the realm link: a QUIC stream, a TCP connection or a TLS connection.".into(),
        format!("N callers share one session and call back to back (closed loop) for {duration:?} after a {warmup:?} warm-up; variants take turns, the order rotating each repetition."),
        "Latency: hdrhistogram (ns, 3 digits) with `record_correct(latency, expected_interval)`, the expected interval being the warm-up's median latency, so a stall also counts the calls a caller could not send while it waited (coordinated omission). 'p50/p99 uncorrected' are the raw values for comparison: a corrected p50 far above the raw one means rare long stalls (on a shared 2-core machine, usually the scheduler) dominate.".into(),
    ];
    result.plot(
        "rpc-p99",
        "p99 latency",
        "p99 call latency across a link (µs, CO-corrected)",
    );
    result.plot(
        "rpc-p50",
        "p50 latency",
        "p50 call latency across a link (µs)",
    );
    result.plot("rpc-rate", "calls/s", "Calls/s across a link");
    read(&mut result);
    Ok(result)
}

fn read(result: &mut ScenarioResult) {
    for concurrency in CONCURRENCY {
        let case = format!("{concurrency} in flight");
        let get = |name: &str, d: &str| result.ratio_median(&case, name, "quic", d);
        if let (Some(p50), Some(p99), Some(rate), Some(p99s)) = (
            get("p50 latency", "tcp"),
            get("p99 latency", "tcp"),
            get("calls/s", "tcp"),
            get("p99 latency", "tls"),
        ) {
            let verdict = if p99 <= 1.0 {
                "QUIC's tail is no worse than TCP's"
            } else {
                "QUIC's tail is worse than TCP's"
            };
            result.notes.push(format!(
                "{case}: QUIC/TCP p50 {p50:.2}x, p99 {p99:.2}x, calls/s {rate:.2}x; QUIC/TLS p99 {p99s:.2}x — {verdict}."
            ));
        }
    }
}
