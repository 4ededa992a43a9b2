//! `throughput`: events/s forwarded across one realm link from node a to node b, for a QUIC
//! stream, a plain TCP connection and a TLS connection, at 64 B, 1 KiB and 16 KiB payloads.

use std::sync::Arc;
use std::time::Instant;

use crate::bench::fixture::Pair;
use crate::bench::load::{self, Background, Counter, Window};
use crate::bench::stats::Collector;
use crate::bench::system::cpu_seconds;
use crate::bench::{Ctx, Error, ScenarioResult};
use crate::client::Session;
use crate::config::LinkTransport;

const SIZES: [(usize, &str); 3] = [(64, "64 B"), (1024, "1 KiB"), (16 * 1024, "16 KiB")];
const TOPIC: &str = "bench.throughput";

/// The three kinds of link, each on its own realm (QUIC first: it sets the peer's connection).
pub const LINKS: [(LinkTransport, &str); 3] = [
    (LinkTransport::Quic, "quic"),
    (LinkTransport::Tcp, "tcp"),
    (LinkTransport::Tls, "tls"),
];

struct Flow {
    variant: &'static str,
    publisher: Session,
    counter: Arc<Counter>,
    _subscriber: Session,
}

pub async fn run(ctx: &Ctx) -> Result<ScenarioResult, Error> {
    let pair = Pair::start("throughput").await?;
    let background = Background::default();
    let outcome = measure(ctx, &pair, &background).await;
    background.stop().await;
    pair.shutdown().await;
    outcome
}

/// Realm `<prefix>-<variant>` on both nodes, linked over `transport`; returns the realm name.
pub async fn linked_realm(
    pair: &Pair,
    prefix: &str,
    transport: LinkTransport,
    variant: &str,
) -> Result<String, Error> {
    let realm = format!("{prefix}-{variant}");
    pair.create_realm(&realm);
    pair.link(&realm, transport, &pair.link_address(transport))
        .await?;
    Ok(realm)
}

async fn flow(
    pair: &Pair,
    background: &Background,
    transport: LinkTransport,
    variant: &'static str,
    epoch: Instant,
) -> Result<Flow, Error> {
    let realm = linked_realm(pair, "tp", transport, variant).await?;
    let subscriber = pair.tcp_client(&pair.b, &realm).await?;
    let counter = load::subscribe_counting(background, &subscriber, TOPIC, false, epoch).await?;
    let publisher = pair.tcp_client(&pair.a, &realm).await?;
    load::prime(&publisher, TOPIC, &counter, epoch).await?;
    Ok(Flow {
        variant,
        publisher,
        counter,
        _subscriber: subscriber,
    })
}

async fn measure(ctx: &Ctx, pair: &Pair, background: &Background) -> Result<ScenarioResult, Error> {
    let epoch = Instant::now();
    let mut flows = Vec::new();
    for (transport, variant) in LINKS {
        flows.push(flow(pair, background, transport, variant, epoch).await?);
    }
    let mut c = Collector::default();
    let bar = ctx.bar(
        "throughput",
        (ctx.reps() * SIZES.len() * flows.len()) as u64,
    );
    for rep in 0..ctx.reps() {
        for (size, case) in SIZES {
            let body = load::body(size);
            let window = Window {
                window: if size > 4096 { 256 } else { 1024 },
                warmup: ctx.secs(0.3, 0.5),
                measure: ctx.secs(1.0, 3.0),
            };
            for i in 0..flows.len() {
                let flow = &flows[(i + rep) % flows.len()];
                bar.set_message(format!("rep {} {case} {}", rep + 1, flow.variant));
                let (cpu, before) = (cpu_seconds(), flow.counter.count());
                let pumped =
                    load::pump(&flow.publisher, TOPIC, &body, &flow.counter, window, epoch).await?;
                let delivered = (flow.counter.count() - before).max(1) as f64;
                c.push(case, flow.variant, "events/s", "1/s", pumped.rate);
                c.push(
                    case,
                    flow.variant,
                    "MiB/s",
                    "MiB/s",
                    pumped.rate * size as f64 / (1024.0 * 1024.0),
                );
                c.push(
                    case,
                    flow.variant,
                    "CPU per event",
                    "µs",
                    (cpu_seconds() - cpu) * 1e6 / delivered,
                );
                if pumped.lost > 0 {
                    c.push(
                        case,
                        flow.variant,
                        "events lost",
                        "events",
                        pumped.lost as f64,
                    );
                }
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let mut result = ScenarioResult::new("throughput", "Events/s forwarded across one realm link");
    result.absorb(
        &c,
        &[
            ("events/s", "quic", "tcp"),
            ("events/s", "quic", "tls"),
            ("CPU per event", "quic", "tcp"),
            ("CPU per event", "quic", "tls"),
        ],
    );
    result.method = vec![
        "Node a links one realm per variant to node b: a QUIC stream (on the one a→b connection), a plain TCP connection, a TLS 1.3 connection. A publisher on a and a subscriber on b are RawSocket TCP clients (MessagePack) in every variant, so only the link differs.".into(),
        "Path of an event: publisher → realm on a → the link's local session → link shuttle → link session on b (QUIC stream / TCP / TLS) → realm on b → subscriber.".into(),
        format!(
            "Windowed publisher: at most 1024 events (256 at 16 KiB) published but not yet received, so no queue overflows and nothing is dropped; {:?} warm-up, {:?} measured; variants take turns, the order rotating each repetition.",
            ctx.secs(0.3, 0.5), ctx.secs(1.0, 3.0)
        ),
        "CPU per event: user+system CPU time of the whole process (both nodes and both clients) during the run, divided by events delivered.".into(),
    ];
    result.plot("throughput-events", "events/s", "Events/s across one link");
    result.plot("throughput-mibs", "MiB/s", "Payload MiB/s across one link");
    result.plot(
        "throughput-cpu",
        "CPU per event",
        "CPU µs per forwarded event (whole process)",
    );
    result.target_ratio(
        "QUIC link throughput >= 0.8x plain TCP at 1 KiB",
        result.ratio_median("1 KiB", "events/s", "quic", "tcp"),
        0.8,
        false,
    );
    result.target_ratio(
        "QUIC link throughput >= 1.0x TLS over TCP at 1 KiB",
        result.ratio_median("1 KiB", "events/s", "quic", "tls"),
        1.0,
        false,
    );
    read(&mut result);
    Ok(result)
}

fn read(result: &mut ScenarioResult) {
    for (_, case) in SIZES {
        let (Some(t), Some(s)) = (
            result.ratio_median(case, "events/s", "quic", "tcp"),
            result.ratio_median(case, "events/s", "quic", "tls"),
        ) else {
            continue;
        };
        let cpu = result
            .ratio_median(case, "CPU per event", "quic", "tcp")
            .map(|r| format!("; CPU per event QUIC/TCP {r:.2}x"))
            .unwrap_or_default();
        let verdict = match (t >= 1.0, s >= 1.0) {
            (true, _) => "QUIC beats both",
            (false, true) => "QUIC beats TLS but not plain TCP",
            (false, false) => "QUIC is behind both",
        };
        result.notes.push(format!(
            "{case}: QUIC/TCP {t:.2}x, QUIC/TLS {s:.2}x — {verdict}{cpu}."
        ));
    }
}
