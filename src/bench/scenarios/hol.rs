//! `hol`: head-of-line blocking. A bulk flow on realm A and a latency probe on realm B cross
//! the link together over a lossy relay (seeded loss, 10 ms RTT): QUIC with a stream per realm
//! vs QUIC with everything on one stream vs a TCP connection per realm (without loss: kernel
//! TCP cannot be made to lose packets here). The figure of merit is the probe's p99.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bench::fixture::Pair;
use crate::bench::load::{self, Background, Counter, Window};
use crate::bench::stats::Collector;
use crate::bench::{Ctx, Error, ScenarioResult};
use crate::client::Session;
use crate::config::LinkTransport;
use crate::relay::{RelayConfig, TcpRelay, UdpRelay};

const ONE_WAY: Duration = Duration::from_millis(5);
const BULK_SIZE: usize = 16 * 1024;
const BULK_WINDOW: u64 = 64;
const PROBE_HZ: u32 = 200;
const SEED: u64 = 0x401;

/// A bulk publisher and a probe publisher with their counting subscribers.
struct Setup {
    variant: &'static str,
    bulk: Session,
    bulk_count: Arc<Counter>,
    probe: Session,
    probe_count: Arc<Counter>,
    _subscribers: Vec<Session>,
}

pub async fn run(ctx: &Ctx) -> Result<ScenarioResult, Error> {
    let losses: &[f64] = if ctx.quick { &[0.01] } else { &[0.01, 0.02] };
    let mut c = Collector::default();
    let bar = ctx.bar("hol", (ctx.reps() * 3 * losses.len()) as u64);
    for (i, loss) in losses.iter().enumerate() {
        let pair = Pair::start(&format!("hol{i}")).await?;
        let background = Background::default();
        let outcome = measure(ctx, &pair, &background, *loss, &mut c, &bar).await;
        background.stop().await;
        pair.shutdown().await;
        outcome?;
    }
    bar.finish_and_clear();
    let mut result = ScenarioResult::new(
        "hol",
        "Head-of-line blocking: bulk on realm A, latency probe on realm B",
    );
    result.absorb(
        &c,
        &[
            ("probe p99", "quic", "quic-1stream"),
            ("probe p99", "quic", "tcp"),
        ],
    );
    result.method = vec![
        format!("Relays add {ONE_WAY:?} each way (10 ms RTT). QUIC goes through a UDP relay that drops datagrams in both directions with a seeded RNG (seed {SEED:#x}); TCP through a TCP relay with the same delay and no loss."),
        format!("Bulk: {BULK_SIZE}-byte events, at most {BULK_WINDOW} in flight, published on node a and received on node b. Probe: 64-byte events at {PROBE_HZ}/s on a fixed schedule (open loop, so no coordinated omission), one-way latency measured at the subscriber on b (same process, same monotonic clock)."),
        "Variants: `quic` = bulk and probe on two realms, so two streams of the one QUIC connection (the design); `quic-1stream` = bulk and probe on the same realm, so one stream carries both (the HOL control: what multiplexing all realms over one ordered stream does); `tcp` = two realms, a TCP connection each, no loss.".into(),
        "Stand-in: wampmesh has no 'all realms over one stream' mode, so the single-stream control puts both flows into one realm (one link stream). Same connection, same congestion controller, same loss.".into(),
    ];
    result.plot(
        "hol-p99",
        "probe p99",
        "Probe p99 one-way latency while bulk runs (ms)",
    );
    result.plot(
        "hol-bulk",
        "bulk MiB/s",
        "Bulk throughput during the probe (MiB/s)",
    );
    let first = format!("loss {:.0}%", losses[0] * 100.0);
    result.target_ratio(
        &format!("hol p99 of B, stream per realm <= 0.5x single-stream mux ({first})"),
        result.ratio_median(&first, "probe p99", "quic", "quic-1stream"),
        0.5,
        true,
    );
    read(&mut result, losses, ctx.secs(4.0, 8.0).as_secs_f64() * 1e3);
    Ok(result)
}

async fn measure(
    ctx: &Ctx,
    pair: &Pair,
    background: &Background,
    loss: f64,
    c: &mut Collector,
    bar: &indicatif::ProgressBar,
) -> Result<(), Error> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let lossy = RelayConfig {
        delay: ONE_WAY,
        loss,
        seed: SEED,
        ..RelayConfig::default()
    };
    let udp = UdpRelay::start(any, pair.link_address(LinkTransport::Quic).parse()?, lossy).await?;
    let tcp = TcpRelay::start(
        any,
        pair.link_address(LinkTransport::Tcp).parse()?,
        RelayConfig { loss: 0.0, ..lossy },
    )
    .await?;
    let epoch = Instant::now();
    let quic_a = ("hol-quic-a", LinkTransport::Quic, udp.local_addr());
    let quic_b = ("hol-quic-b", LinkTransport::Quic, udp.local_addr());
    let tcp_a = ("hol-tcp-a", LinkTransport::Tcp, tcp.local_addr());
    let tcp_b = ("hol-tcp-b", LinkTransport::Tcp, tcp.local_addr());
    for (realm, transport, address) in [quic_a, quic_b, tcp_a, tcp_b] {
        pair.create_realm(realm);
        pair.link(realm, transport, &address.to_string()).await?;
    }
    let setups = [
        setup(pair, background, "quic", quic_a.0, quic_b.0, epoch).await?,
        setup(pair, background, "quic-1stream", quic_a.0, quic_a.0, epoch).await?,
        setup(pair, background, "tcp", tcp_a.0, tcp_b.0, epoch).await?,
    ];
    let case = format!("loss {:.0}%", loss * 100.0);
    let duration = ctx.secs(4.0, 8.0);
    for rep in 0..ctx.reps() {
        for i in 0..setups.len() {
            let s = &setups[(i + rep) % setups.len()];
            bar.set_message(format!("{case} rep {} {}", rep + 1, s.variant));
            let (p50, p99, max, mib) = run_once(s, duration, epoch).await?;
            c.push(&case, s.variant, "probe p50", "ms", p50);
            c.push(&case, s.variant, "probe p99", "ms", p99);
            c.push(&case, s.variant, "probe max", "ms", max);
            c.push(&case, s.variant, "bulk MiB/s", "MiB/s", mib);
            bar.inc(1);
        }
    }
    let stats = udp.stats();
    c.push(
        &case,
        "quic",
        "relay datagrams dropped",
        "%",
        stats.dropped_loss as f64 * 100.0 / stats.received.max(1) as f64,
    );
    c.push(
        &case,
        "quic",
        "relay queue overflow",
        "%",
        stats.dropped_queue as f64 * 100.0 / stats.received.max(1) as f64,
    );
    udp.stop().await;
    tcp.stop().await;
    Ok(())
}

async fn setup(
    pair: &Pair,
    background: &Background,
    variant: &'static str,
    bulk_realm: &str,
    probe_realm: &str,
    epoch: Instant,
) -> Result<Setup, Error> {
    let (bulk_topic, probe_topic) = (topic("bulk", variant), topic("probe", variant));
    let bulk_sub = pair.tcp_client(&pair.b, bulk_realm).await?;
    let bulk_count =
        load::subscribe_counting(background, &bulk_sub, &bulk_topic, false, epoch).await?;
    let probe_sub = pair.tcp_client(&pair.b, probe_realm).await?;
    let probe_count =
        load::subscribe_counting(background, &probe_sub, &probe_topic, true, epoch).await?;
    let bulk = pair.tcp_client(&pair.a, bulk_realm).await?;
    let probe = pair.tcp_client(&pair.a, probe_realm).await?;
    load::prime(&bulk, &bulk_topic, &bulk_count, epoch).await?;
    load::prime(&probe, &probe_topic, &probe_count, epoch).await?;
    Ok(Setup {
        variant,
        bulk,
        bulk_count,
        probe,
        probe_count,
        _subscribers: vec![bulk_sub, probe_sub],
    })
}

/// The topic of `flow` (bulk, probe) in `variant`: distinct, so no flow counts another's events.
fn topic(flow: &str, variant: &str) -> String {
    format!("bench.hol.{flow}.{variant}")
}

/// Bulk and probe together for `duration`: probe p50, p99, max (ms) and bulk MiB/s.
async fn run_once(
    s: &Setup,
    duration: Duration,
    epoch: Instant,
) -> Result<(f64, f64, f64, f64), Error> {
    let body = load::body(BULK_SIZE);
    let bulk_topic = topic("bulk", s.variant);
    let window = Window {
        window: BULK_WINDOW,
        warmup: Duration::from_millis(500),
        measure: duration,
    };
    let bulk = load::pump(&s.bulk, &bulk_topic, &body, &s.bulk_count, window, epoch);
    let probe = async {
        // Start probing once the bulk flow has warmed up.
        tokio::time::sleep(window.warmup).await;
        s.probe_count.take_latency();
        let sent = load::probe(
            &s.probe,
            &topic("probe", s.variant),
            PROBE_HZ,
            duration,
            epoch,
        )
        .await?;
        s.probe_count.settle().await;
        Ok::<_, Error>(sent)
    };
    let (pumped, sent) = tokio::join!(bulk, probe);
    let (pumped, _sent) = (pumped?, sent?);
    let h = s
        .probe_count
        .take_latency()
        .ok_or("probe latency not recorded")?;
    let ms = |ns: u64| ns as f64 / 1e6;
    Ok((
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        pumped.rate * BULK_SIZE as f64 / (1024.0 * 1024.0),
    ))
}

fn read(result: &mut ScenarioResult, losses: &[f64], duration_ms: f64) {
    for loss in losses {
        let case = format!("loss {:.0}%", loss * 100.0);
        let p99 = |v: &str| result.median(&case, v, "probe p99");
        let bulk = |v: &str| result.median(&case, v, "bulk MiB/s");
        if let (Some(q), Some(q1), Some(t), Some(bq), Some(bq1), Some(bt)) = (
            p99("quic"),
            p99("quic-1stream"),
            p99("tcp"),
            bulk("quic"),
            bulk("quic-1stream"),
            bulk("tcp"),
        ) {
            let starved = |p99: f64| p99 >= 0.9 * duration_ms;
            if starved(q) || starved(q1) {
                result.notes.push(format!(
                    "{case}: a probe p99 near the run length ({duration_ms:.0} ms) means the probe was held back for (almost) the whole run and its events left only when the bulk flow paused; under sustained bulk the true p99 is at least that."
                ));
            }
            let verdict = if q <= q1 * 0.5 {
                "a stream per realm keeps the probe out of the bulk realm's queue and retransmissions"
            } else if q < q1 {
                "a stream per realm helps the probe, but less than the target asks"
            } else {
                "a stream per realm does not help the probe here"
            };
            result.notes.push(format!(
                "{case}: probe p99 {q:.1} ms with a stream per realm, {q1:.1} ms with one stream for both realms, {t:.1} ms over TCP per realm without loss — {verdict}. Bulk meanwhile: {bq:.1} / {bq1:.1} / {bt:.1} MiB/s."
            ));
        }
    }
}
