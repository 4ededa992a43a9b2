//! The bench relay (`wampmesh::relay`): delay is applied, loss with a fixed seed is
//! deterministic and near the configured rate, and a dropped relay stops by itself.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use wampmesh::relay::{RelayConfig, TcpRelay, UdpRelay};

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn delayed(ms: u64) -> RelayConfig {
    RelayConfig {
        delay: Duration::from_millis(ms),
        ..RelayConfig::default()
    }
}

/// A UDP socket that echoes every datagram, until the test ends.
async fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind(any()).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// A TCP listener that echoes every connection, until the test ends.
async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind(any()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn udp_delay_is_applied_each_way() {
    let relay = UdpRelay::start(any(), udp_echo().await, delayed(20))
        .await
        .unwrap();
    let client = UdpSocket::bind(any()).await.unwrap();
    client.connect(relay.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    for _ in 0..3 {
        let started = Instant::now();
        client.send(b"ping").await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let rtt = started.elapsed();
        assert_eq!(&buf[..n], b"ping");
        assert!(rtt >= Duration::from_millis(40), "rtt {rtt:?} < 2 x 20 ms");
        assert!(
            rtt < Duration::from_millis(120),
            "rtt {rtt:?} far above 2 x 20 ms"
        );
    }
    relay.stop().await;
}

#[tokio::test]
async fn tcp_delay_is_applied_each_way() {
    let relay = TcpRelay::start(any(), tcp_echo().await, delayed(15))
        .await
        .unwrap();
    let started = Instant::now();
    let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = [0u8; 4];
    for _ in 0..3 {
        let sent = Instant::now();
        stream.write_all(b"ping").await.unwrap();
        stream.read_exact(&mut buf).await.unwrap();
        let rtt = sent.elapsed();
        assert_eq!(&buf, b"ping");
        assert!(rtt >= Duration::from_millis(30), "rtt {rtt:?} < 2 x 15 ms");
        assert!(
            rtt < Duration::from_millis(100),
            "rtt {rtt:?} far above 2 x 15 ms"
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(90));
    assert_eq!(relay.stats().connections, 1);
    relay.stop().await;
}

/// Sends `count` numbered datagrams through a relay with `loss` and `seed` to a sink and
/// returns the numbers that arrived. Paced so that no datagram is lost before the relay, and
/// the sink reads as they come so that none is lost after it.
async fn survivors(count: u32, loss: f64, seed: u64) -> BTreeSet<u32> {
    let sink = UdpSocket::bind(any()).await.unwrap();
    let config = RelayConfig {
        loss,
        seed,
        ..RelayConfig::default()
    };
    let relay = UdpRelay::start(any(), sink.local_addr().unwrap(), config)
        .await
        .unwrap();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut got = BTreeSet::new();
        let mut buf = [0u8; 8];
        loop {
            tokio::select! {
                _ = &mut done_rx => break,
                received = sink.recv(&mut buf) => {
                    let n = received.unwrap();
                    assert_eq!(n, 4);
                    got.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
                }
            }
        }
        got
    });
    let client = UdpSocket::bind(any()).await.unwrap();
    client.connect(relay.local_addr()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..count {
        client.send(&i.to_be_bytes()).await.unwrap();
        if i % 64 == 63 {
            while relay.stats().received < u64::from(i + 1) {
                assert!(Instant::now() < deadline, "relay stalled");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let stats = loop {
        let s = relay.stats();
        if s.forwarded + s.dropped_loss + s.dropped_queue >= u64::from(count) {
            break s;
        }
        assert!(Instant::now() < deadline, "relay did not finish: {s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(stats.received, u64::from(count));
    assert_eq!(stats.dropped_queue, 0);
    // Give the sink a moment to read the last datagrams.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = done_tx.send(());
    let got = reader.await.unwrap();
    assert_eq!(
        got.len() as u64,
        stats.forwarded,
        "the sink got every forwarded datagram"
    );
    relay.stop().await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_loss_is_seeded_and_near_the_rate() {
    let count = 10_000;
    let first = survivors(count, 0.05, 42).await;
    let again = survivors(count, 0.05, 42).await;
    assert_eq!(first, again, "same seed, same drops");
    let rate = 1.0 - first.len() as f64 / f64::from(count);
    assert!((rate - 0.05).abs() < 0.01, "loss rate {rate} not near 0.05");
    let other = survivors(count, 0.05, 43).await;
    assert_ne!(first, other, "another seed drops other datagrams");
}

#[tokio::test]
async fn udp_relay_stops_when_dropped() {
    let relay = UdpRelay::start(any(), udp_echo().await, RelayConfig::default())
        .await
        .unwrap();
    let addr = relay.local_addr();
    drop(relay);
    // The relay's tasks end by themselves and release the port.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match std::net::UdpSocket::bind(addr) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("relay port still taken after drop: {e}"),
        }
    }
}

#[tokio::test]
async fn tcp_relay_stops_when_dropped() {
    let relay = TcpRelay::start(any(), tcp_echo().await, delayed(1))
        .await
        .unwrap();
    let addr = relay.local_addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    open.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    open.read_exact(&mut one).await.unwrap();
    drop(relay);
    // The relayed connection is closed and new connections are refused.
    let closed = tokio::time::timeout(Duration::from_secs(2), open.read(&mut one))
        .await
        .expect("closed in time");
    assert!(matches!(closed, Ok(0) | Err(_)));
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "relay still accepting after drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends "ping" and says whether the echo came back within `wait_ms`.
async fn echo(client: &UdpSocket, wait_ms: u64) -> bool {
    client.send(b"ping").await.unwrap();
    let mut buf = [0u8; 16];
    tokio::time::timeout(Duration::from_millis(wait_ms), client.recv(&mut buf))
        .await
        .is_ok()
}

#[tokio::test]
async fn udp_cut_drops_everything_until_healed() {
    let relay = UdpRelay::start(any(), udp_echo().await, RelayConfig::default())
        .await
        .unwrap();
    let client = UdpSocket::bind(any()).await.unwrap();
    client.connect(relay.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    assert!(echo(&client, 2000).await, "relays before the cut");
    relay.cut();
    for _ in 0..3 {
        assert!(!echo(&client, 200).await, "nothing crosses a cut relay");
    }
    assert!(relay.stats().dropped_cut >= 3);
    relay.heal();
    assert!(echo(&client, 2000).await, "relays again once healed");
    // Nothing held during the cut arrives late.
    let late = tokio::time::timeout(Duration::from_millis(200), client.recv(&mut buf)).await;
    assert!(
        late.is_err(),
        "no datagram from the cut arrived after the heal"
    );
    relay.stop().await;
}

#[tokio::test]
async fn tcp_cut_closes_connections_until_healed() {
    let relay = TcpRelay::start(any(), tcp_echo().await, RelayConfig::default())
        .await
        .unwrap();
    let addr = relay.local_addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    let mut one = [0u8; 1];
    open.write_all(b"x").await.unwrap();
    open.read_exact(&mut one).await.unwrap();
    relay.cut();
    let closed = tokio::time::timeout(Duration::from_secs(2), open.read(&mut one))
        .await
        .expect("the relayed connection is closed by the cut");
    assert!(matches!(closed, Ok(0) | Err(_)));
    // A connection made while cut is closed at once.
    let mut during = TcpStream::connect(addr).await.unwrap();
    let _ = during.write_all(b"x").await;
    let refused = tokio::time::timeout(Duration::from_secs(2), during.read(&mut one))
        .await
        .expect("closed at once");
    assert!(matches!(refused, Ok(0) | Err(_)));
    relay.heal();
    let mut after = TcpStream::connect(addr).await.unwrap();
    after.write_all(b"y").await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), after.read_exact(&mut one))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&one, b"y");
    assert!(relay.stats().dropped_cut >= 1);
    relay.stop().await;
}
