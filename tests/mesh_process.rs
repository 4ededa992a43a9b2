//! Three `wampmesh node --config` processes in a chain (n1 -> n2 <- n3, the outer nodes dial the
//! middle one): events cross both links; the middle node is killed with SIGKILL or stopped with
//! SIGTERM and started again, and its neighbours reconnect by backoff and deliver again, once.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::mesh::{
    self, client_at, field, link_list, probe_until_delivered, wait_listed_up, wait_until,
    Collector, LinkTo, CONTROL_REALM, REALM,
};
use common::{free_ports, localhost, NodeProcess};
use wampmesh::client::Session;
use wampmesh::dict;
use wampmesh::wamp::{Dict, Value};

const LINK_TIMEOUT: Duration = Duration::from_secs(20);
const TOPIC: &str = "com.example.chain";

/// Ports and configs of the three nodes.
struct Chain {
    tcp: Vec<u16>,
    configs: Vec<String>,
}

impl Chain {
    fn new(certs: &Path) -> Chain {
        let tcp = free_ports(3);
        let quic = mesh::free_udp_ports(3);
        let to_middle = [LinkTo {
            peer: "n2".into(),
            quic_port: quic[1],
        }];
        let configs = vec![
            mesh::node_toml(certs, "n1", tcp[0], quic[0], &to_middle),
            mesh::node_toml(certs, "n2", tcp[1], quic[1], &[]),
            mesh::node_toml(certs, "n3", tcp[2], quic[2], &to_middle),
        ];
        Chain { tcp, configs }
    }

    fn start(&self, index: usize) -> NodeProcess {
        NodeProcess::start(
            &format!("mesh-proc-n{}", index + 1),
            &self.configs[index],
            localhost(self.tcp[index]),
        )
    }

    fn addr(&self, index: usize) -> String {
        localhost(self.tcp[index]).to_string()
    }

    async fn client(&self, index: usize, realm: &str) -> Session {
        client_at(&self.addr(index), realm).await
    }
}

/// The state of the link to n2 as `wampmesh.link.list` on `control`'s node shows it.
async fn state_of_link_to_middle(control: &Session) -> Option<String> {
    let rows = link_list(control).await;
    rows.iter()
        .find(|r| field(r, "peer") == Some("n2"))
        .and_then(|r| field(r, "state"))
        .map(str::to_owned)
}

async fn wait_link_not_up(control: &Session, node: &str) {
    mesh::wait_until_async(
        &format!("{node} to see its link to n2 lost"),
        LINK_TIMEOUT,
        || async { state_of_link_to_middle(control).await.as_deref() != Some("up") },
    )
    .await;
}

/// Publishes `range` numbered events on n1 and checks n3's subscriber got every event it was
/// ever sent exactly once.
async fn deliver_numbered(
    publisher: &Session,
    subscriber: &Collector,
    range: std::ops::Range<u64>,
) {
    let last = range.end;
    for seq in range {
        let payload = mesh::kw(vec![("seq", seq.into())]);
        publisher
            .publish(TOPIC, payload, dict! { "acknowledge" => true })
            .await
            .expect("publish on n1");
    }
    let what = format!("events up to {last} delivered on n3");
    wait_until(&what, Duration::from_secs(10), || {
        subscriber
            .numbered("seq")
            .iter()
            .filter(|s| **s < last)
            .count() as u64
            >= last
    })
    .await;
    // A quiet window in which a duplicate would show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got = subscriber.numbered("seq");
    got.sort_unstable();
    assert_eq!(
        got,
        (0..last).collect::<Vec<_>>(),
        "every event on n3 exactly once"
    );
}

/// Publishes probes on n1 until one more reaches n3 (interest has crossed the restarted node).
async fn wait_delivery_again(publisher: &Session, subscriber: &Collector) {
    let probes_before = subscriber.numbered("probe").len();
    mesh::wait_until_async(
        "a probe across the restarted node",
        LINK_TIMEOUT,
        || async {
            let payload = mesh::kw(vec![("probe", 1000u64.into())]);
            publisher
                .publish(TOPIC, payload, dict! { "acknowledge" => true })
                .await
                .expect("probe");
            let until = Instant::now() + Duration::from_millis(200);
            while Instant::now() < until && subscriber.numbered("probe").len() == probes_before {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            subscriber.numbered("probe").len() > probes_before
        },
    )
    .await;
}

fn kill_9(node: &NodeProcess) {
    let status = Command::new("kill")
        .arg("-KILL")
        .arg(node.pid().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -KILL {}", node.pid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn middle_node_killed_and_restarted() {
    let certs = mesh::mesh_certs("mesh-proc-kill", &["n1", "n2", "n3"]);
    let chain = Chain::new(&certs);
    let n2 = chain.start(1);
    let (_n1, _n3) = (chain.start(0), chain.start(2));
    let (control1, control3) = (
        chain.client(0, CONTROL_REALM).await,
        chain.client(2, CONTROL_REALM).await,
    );
    wait_listed_up(&control1, "n2", REALM, LINK_TIMEOUT).await;
    wait_listed_up(&control3, "n2", REALM, LINK_TIMEOUT).await;

    let subscriber_session = chain.client(2, REALM).await;
    let subscriber = Collector::subscribe(&subscriber_session, TOPIC, Dict::new()).await;
    let publisher = chain.client(0, REALM).await;
    probe_until_delivered(&publisher, TOPIC, &subscriber, LINK_TIMEOUT).await;
    deliver_numbered(&publisher, &subscriber, 0..20).await;

    kill_9(&n2);
    let killed = Instant::now();
    drop(n2);
    wait_link_not_up(&control1, "n1").await;
    wait_link_not_up(&control3, "n3").await;
    println!("n1 and n3 saw n2 gone {:?} after kill -9", killed.elapsed());

    let _n2 = chain.start(1);
    let restarted = Instant::now();
    wait_listed_up(&control1, "n2", REALM, LINK_TIMEOUT).await;
    wait_listed_up(&control3, "n2", REALM, LINK_TIMEOUT).await;
    wait_delivery_again(&publisher, &subscriber).await;
    println!(
        "delivery n1 -> n3 works again {:?} after n2 restarted",
        restarted.elapsed()
    );
    deliver_numbered(&publisher, &subscriber, 20..40).await;

    let rows = link_list(&control1).await;
    let row = rows
        .iter()
        .find(|r| field(r, "peer") == Some("n2"))
        .expect("n1 lists its link");
    assert_eq!(
        row.get("handshakes").and_then(Value::as_u64),
        Some(2),
        "one new QUIC handshake after the restart: {row:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn middle_node_terminated_and_restarted() {
    let certs = mesh::mesh_certs("mesh-proc-term", &["n1", "n2", "n3"]);
    let chain = Chain::new(&certs);
    let mut n2 = chain.start(1);
    let (_n1, _n3) = (chain.start(0), chain.start(2));
    let (control1, control3) = (
        chain.client(0, CONTROL_REALM).await,
        chain.client(2, CONTROL_REALM).await,
    );
    let downs = Collector::subscribe(&control1, "wampmesh.link.on_down", Dict::new()).await;
    let ups = Collector::subscribe(&control1, "wampmesh.link.on_up", Dict::new()).await;
    wait_listed_up(&control1, "n2", REALM, LINK_TIMEOUT).await;
    wait_listed_up(&control3, "n2", REALM, LINK_TIMEOUT).await;

    let subscriber_session = chain.client(2, REALM).await;
    let subscriber = Collector::subscribe(&subscriber_session, TOPIC, Dict::new()).await;
    let publisher = chain.client(0, REALM).await;
    probe_until_delivered(&publisher, TOPIC, &subscriber, LINK_TIMEOUT).await;
    deliver_numbered(&publisher, &subscriber, 0..10).await;

    // SIGTERM on a blocking thread, so that the peers' view is timed while n2 drains.
    let terminated = Instant::now();
    let exit = tokio::task::spawn_blocking(move || {
        let status = n2.terminate(Duration::from_secs(15));
        (status, n2)
    });
    wait_until("on_down on n1's control realm", LINK_TIMEOUT, || {
        !downs.events().is_empty()
    })
    .await;
    let seen_down = terminated.elapsed();
    let (status, n2) = exit.await.expect("terminate thread");
    let status = status.expect("n2 exits after SIGTERM");
    println!(
        "n2 exited with {status} {:?} after SIGTERM",
        terminated.elapsed()
    );
    assert!(
        status.success(),
        "a clean exit: {status}\n{}",
        n2.logs_tail()
    );
    drop(n2);
    let first_down = downs.events()[0].payload.args.clone().unwrap_or_default();
    let details = first_down
        .first()
        .and_then(Value::as_dict)
        .cloned()
        .unwrap_or_default();
    let reason = field(&details, "reason").unwrap_or_default().to_owned();
    println!("n1 saw the link down {seen_down:?} after SIGTERM, reason {reason:?}");
    assert_eq!(field(&details, "peer"), Some("n2"));
    assert_eq!(field(&details, "realm"), Some(REALM));
    assert!(
        reason.starts_with("peer session"),
        "a clean close by the peer, not a timeout: {reason:?}"
    );
    wait_link_not_up(&control3, "n3").await;

    let ups_before = ups.events().len();
    let _n2 = chain.start(1);
    wait_listed_up(&control1, "n2", REALM, LINK_TIMEOUT).await;
    wait_listed_up(&control3, "n2", REALM, LINK_TIMEOUT).await;
    wait_until("on_up after n2 returned", LINK_TIMEOUT, || {
        ups.events().len() > ups_before
    })
    .await;
    wait_delivery_again(&publisher, &subscriber).await;
    deliver_numbered(&publisher, &subscriber, 10..30).await;
}
