//! `setup`: the time to link one more realm when the peer is already connected, with a 10 ms
//! round trip injected by relays: a new stream on the existing QUIC connection vs a new TCP
//! connection vs a new TLS connection, in round trips. Also where a QUIC realm link's time
//! goes (stream + RawSocket handshake + HELLO/WELCOME).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::bench::fixture::{self, Pair};
use crate::bench::stats::Collector;
use crate::bench::{Ctx, Error, ScenarioResult};
use crate::config::LinkTransport;
use crate::relay::{RelayConfig, TcpRelay, UdpRelay};
use crate::wamp::Dict;

/// One-way delay of each relay: a 10 ms round trip.
const ONE_WAY: Duration = Duration::from_millis(5);

pub async fn run(ctx: &Ctx) -> Result<ScenarioResult, Error> {
    let pair = Pair::start("setup").await?;
    let outcome = measure(ctx, &pair).await;
    pair.shutdown().await;
    outcome
}

fn socket(address: &str) -> Result<SocketAddr, Error> {
    Ok(address.parse()?)
}

async fn measure(ctx: &Ctx, pair: &Pair) -> Result<ScenarioResult, Error> {
    let config = RelayConfig {
        delay: ONE_WAY,
        ..RelayConfig::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let quic = UdpRelay::start(
        any,
        socket(&pair.link_address(LinkTransport::Quic))?,
        config,
    )
    .await?;
    let tcp = TcpRelay::start(any, socket(&pair.link_address(LinkTransport::Tcp))?, config).await?;
    let tls = TcpRelay::start(any, socket(&pair.link_address(LinkTransport::Tls))?, config).await?;
    // The unit: one measured round trip through a relay (timers add a little to the 10 ms).
    let rtt = relay_rtt(config).await?;
    let rtt_ms = rtt.as_secs_f64() * 1e3;
    let mut c = Collector::default();
    // The first QUIC realm link makes the connection (handshake included).
    pair.create_realm("setup-first");
    let first = pair
        .link(
            "setup-first",
            LinkTransport::Quic,
            &quic.local_addr().to_string(),
        )
        .await?;
    let variants = [
        (LinkTransport::Quic, "quic", quic.local_addr()),
        (LinkTransport::Tcp, "tcp", tcp.local_addr()),
        (LinkTransport::Tls, "tls", tls.local_addr()),
    ];
    let reps = ctx.reps().max(if ctx.quick { 5 } else { 10 });
    let bar = ctx.bar("setup", (reps * variants.len() + reps) as u64);
    for rep in 0..reps {
        for i in 0..variants.len() {
            let (transport, variant, address) = variants[(i + rep) % variants.len()];
            bar.set_message(format!("rep {} {variant}", rep + 1));
            let realm = format!("setup-{variant}-{rep}");
            pair.create_realm(&realm);
            let took = pair.link(&realm, transport, &address.to_string()).await?;
            c.push(
                "one more realm",
                variant,
                "time to link",
                "RTT",
                took.as_secs_f64() * 1e3 / rtt_ms,
            );
            c.push(
                "one more realm",
                variant,
                "time to link (ms)",
                "ms",
                took.as_secs_f64() * 1e3,
            );
            bar.inc(1);
        }
    }
    breakdown(pair, &quic, reps, rtt_ms, &mut c, &bar).await?;
    bar.finish_and_clear();
    quic.stop().await;
    tcp.stop().await;
    tls.stop().await;
    let mut result = ScenarioResult::new("setup", "Time to link one more realm (10 ms RTT)");
    result.absorb(
        &c,
        &[
            ("time to link", "quic", "tcp"),
            ("time to link", "quic", "tls"),
        ],
    );
    result.method = vec![
        format!("Relays between node a and node b add {ONE_WAY:?} each way (a nominal 10 ms round trip). The unit of every figure here, 1 RTT, is the measured round trip of a datagram through such a relay: {:.1} ms (timers round each hop up to the next millisecond). QUIC goes through a UDP relay, TCP and TLS through a TCP relay that also holds each new connection for one round trip, as the SYN/SYN-ACK exchange would.", rtt.as_secs_f64() * 1e3),
        format!("Node a is already connected to b: a first realm was linked over QUIC before (it took {:.1} ms = {:.1} RTT, QUIC handshake included).", first.as_secs_f64() * 1e3, first.as_secs_f64() * 1e3 / rtt_ms),
        "Time to link: from `LinkManager::start` for a new realm to the link's `Up` event (the realm joined on both nodes, the link's channel subscribed and its invoke procedure registered on both sides). Variants take turns, rotating each repetition.".into(),
        "Breakdown (QUIC): timed from a client that presents node a's certificate on a connection through the same relay: a new stream with the RawSocket handshake and HELLO/WELCOME (what a link pays), then one SUBSCRIBE for comparison (what a link would pay per request if the realm did not attach it at join).".into(),
    ];
    result.plot(
        "setup-rtt",
        "time to link",
        "Time to link one more realm (RTT = 10 ms)",
    );
    result.plot(
        "setup-breakdown",
        "QUIC link step",
        "Where a QUIC realm link's time goes (RTT)",
    );
    let quic_rtt = result.median("one more realm", "quic", "time to link");
    let tls_rtt = result.median("one more realm", "tls", "time to link");
    result.targets.push(rtt_target(
        "linking one more realm over QUIC <= 1.5 RTT",
        quic_rtt,
        1.5,
        true,
    ));
    result.targets.push(rtt_target(
        "a new TLS connection takes >= 3 RTT",
        tls_rtt,
        3.0,
        false,
    ));
    read(&mut result);
    Ok(result)
}

fn rtt_target(goal: &str, value: Option<f64>, bound: f64, at_most: bool) -> crate::bench::Target {
    let value = value.unwrap_or(f64::NAN);
    let met = if at_most {
        value <= bound
    } else {
        value >= bound
    };
    let margin = match (met, at_most) {
        (true, _) => format!("{:.2} RTT to spare", (value - bound).abs()),
        (false, true) => format!("missed by {:.2} RTT", value - bound),
        (false, false) => format!("short by {:.2} RTT", bound - value),
    };
    crate::bench::Target {
        goal: goal.into(),
        measured: format!("{value:.2} RTT"),
        met: (!value.is_nan()).then_some(met),
        margin,
    }
}

/// Times the peer-side steps of a QUIC realm link, on its own connection through `relay`.
async fn breakdown(
    pair: &Pair,
    relay: &UdpRelay,
    reps: usize,
    rtt_ms: f64,
    c: &mut Collector,
    bar: &indicatif::ProgressBar,
) -> Result<(), Error> {
    let connector = fixture::node_connector(&pair.a)?;
    let connection = connector
        .connect(&relay.local_addr().to_string(), "b")
        .await?;
    for rep in 0..reps {
        bar.set_message(format!("breakdown {}", rep + 1));
        let realm = format!("setup-quic-{rep}");
        let started = Instant::now();
        let session = fixture::quic_session(&connection, &realm).await?;
        let joined = Instant::now();
        let _subscription = session
            .subscribe("bench.setup.channel", Dict::new())
            .await?;
        let subscribed = Instant::now();
        let rtts = |d: Duration| d.as_secs_f64() * 1e3 / rtt_ms;
        c.push(
            "stream + RawSocket + HELLO/WELCOME",
            "quic",
            "QUIC link step",
            "RTT",
            rtts(joined - started),
        );
        c.push(
            "one SUBSCRIBE (a link needs none)",
            "quic",
            "QUIC link step",
            "RTT",
            rtts(subscribed - joined),
        );
        let _ = session.leave("wamp.close.normal").await;
        bar.inc(1);
    }
    connection
        .connection
        .close(quinn::VarInt::from_u32(0), b"done");
    Ok(())
}

/// The round trip of one UDP datagram through a relay with `config` (median of 5).
async fn relay_rtt(config: RelayConfig) -> Result<Duration, Error> {
    let echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let relay = UdpRelay::start("127.0.0.1:0".parse()?, echo.local_addr()?, config).await?;
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    client.connect(relay.local_addr()).await?;
    let mut samples = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..5 {
        let sent = Instant::now();
        client.send(b"rtt").await?;
        let (n, from) =
            tokio::time::timeout(Duration::from_secs(1), echo.recv_from(&mut buf)).await??;
        echo.send_to(&buf[..n], from).await?;
        tokio::time::timeout(Duration::from_secs(1), client.recv(&mut buf)).await??;
        samples.push(sent.elapsed());
    }
    relay.stop().await;
    samples.sort();
    Ok(samples[samples.len() / 2])
}

fn read(result: &mut ScenarioResult) {
    let get = |v: &str| result.median("one more realm", v, "time to link");
    if let (Some(q), Some(t), Some(s)) = (get("quic"), get("tcp"), get("tls")) {
        result.notes.push(format!(
            "Linking one more realm takes {q:.2} RTT over a QUIC stream, {t:.2} RTT over a new TCP connection and {s:.2} RTT over a new TLS connection: QUIC saves {:.2} RTT against TCP and {:.2} RTT against TLS. A new TCP link pays the TCP handshake and ticket authentication (HELLO→CHALLENGE→AUTHENTICATE→WELCOME, one more round trip); a new TLS link pays the TCP and TLS 1.3 handshakes and authenticates by its certificate (HELLO→WELCOME).",
            t - q,
            s - q
        ));
    }
    let step = |case: &str| result.median(case, "quic", "QUIC link step");
    if let (Some(j), Some(sub)) = (
        step("stream + RawSocket + HELLO/WELCOME"),
        step("one SUBSCRIBE (a link needs none)"),
    ) {
        result.notes.push(format!(
            "What a QUIC realm link costs: a new stream is free; the client sends the RawSocket handshake and HELLO together, so the handshake reply and WELCOME come back in one exchange: {j:.2} RTT. A link asks in HELLO to be attached at join (`_wampmesh.attach`), so the realm makes its channel subscription and invoke registration itself and the link is up at WELCOME; without that it would pay a SUBSCRIBE and a REGISTER after WELCOME ({sub:.2} RTT for one SUBSCRIBE here)."
        ));
    }
}
