//! `scale`: N realms linked between two nodes. QUIC: N streams on one connection; TCP: N
//! connections, up to the fd limit. Time to link them all, resident memory per idle link and
//! file descriptors, each repetition in a fresh child process.

use std::time::Duration;

use serde_json::Value as Json;

use crate::bench::stats::Collector;
use crate::bench::system::fd_limit;
use crate::bench::{worker, Ctx, Error, ScenarioResult};

/// A count as the report shows it: 1000 -> "1k".
pub fn human(n: usize) -> String {
    if n >= 1000 && n % 100 == 0 {
        format!("{}k", n as f64 / 1000.0)
    } else {
        n.to_string()
    }
}

/// The largest count of TCP links (or sessions) this process can hold: both ends of every
/// connection are in the same process, so two fds each; a margin is left for everything else.
pub fn tcp_ceiling() -> usize {
    let per_end = fd_limit().saturating_sub(500) / 2;
    (per_end / 500 * 500) as usize
}

fn field(json: &Json, key: &str) -> f64 {
    json.get(key).and_then(Json::as_f64).unwrap_or(f64::NAN)
}

pub async fn run(ctx: &Ctx) -> Result<ScenarioResult, Error> {
    let mut configs: Vec<(&str, usize)> = vec![("quic", 1000)];
    if !ctx.quick {
        configs.extend([("quic", 10_000), ("quic", 50_000), ("quic", 100_000)]);
    }
    configs.push(("tcp", 1000));
    if !ctx.quick {
        configs.push(("tcp", tcp_ceiling()));
    }
    let mut c = Collector::default();
    let mut errors = Vec::new();
    let bar = ctx.bar("scale", (ctx.reps() * configs.len()) as u64);
    for rep in 0..ctx.reps() {
        for (variant, n) in &configs {
            bar.set_message(format!("rep {} {variant} {}", rep + 1, human(*n)));
            let json =
                worker::spawn(&format!("scale:{variant}:{n}"), Duration::from_secs(900)).await?;
            let case = format!("{} links", human(*n));
            let up = field(&json, "up");
            c.push(&case, variant, "links up", "links", up);
            c.push(
                &case,
                variant,
                "time to link all",
                "s",
                field(&json, "seconds"),
            );
            c.push(
                &case,
                variant,
                "links/s",
                "1/s",
                up / field(&json, "seconds"),
            );
            let rss =
                (field(&json, "rss_links") - field(&json, "rss_realms")) / up.max(1.0) / 1024.0;
            c.push(&case, variant, "RSS per link", "KiB", rss);
            let realm_rss = (field(&json, "rss_realms") - field(&json, "rss_start"))
                / (2.0 * *n as f64)
                / 1024.0;
            c.push(&case, variant, "RSS per realm", "KiB", realm_rss);
            let heap =
                (field(&json, "heap_links") - field(&json, "heap_realms")) / up.max(1.0) / 1024.0;
            c.push(&case, variant, "heap per link", "KiB", heap);
            c.push(
                &case,
                variant,
                "fds per link",
                "fds",
                (field(&json, "fds_links") - field(&json, "fds_realms")) / up.max(1.0),
            );
            if *variant == "quic" {
                c.push(
                    &case,
                    variant,
                    "QUIC handshakes",
                    "handshakes",
                    field(&json, "quic_handshakes"),
                );
            }
            if let Some(e) = json.get("first_error").and_then(Json::as_str) {
                errors.push(format!(
                    "{variant} {}: {} failed, first error: {e}",
                    human(*n),
                    field(&json, "failed")
                ));
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let mut result = ScenarioResult::new("scale", "Many realm links between two nodes");
    result.absorb(
        &c,
        &[("RSS per link", "quic", "tcp"), ("links/s", "quic", "tcp")],
    );
    result.method = vec![
        "Each repetition runs in a fresh child process (`wampmesh bench --scenario __worker:scale:T:N`) holding nodes a and b: N realms are created on both, then linked a→b in batches of 500 (each batch started at once, then waited for).".into(),
        "RSS per link = (VmRSS after linking and 1 s idle − VmRSS after creating the realms) / links up. It covers BOTH ends of a link (node a: the link's task with its session on its local realm and its session on the peer's realm, node b: the link's router session) since both nodes share the process; realms themselves are counted separately (RSS per realm).".into(),
        "Where an idle QUIC link's memory goes (heap profile of the memory still held when the links are up: `heaptrack wampmesh bench --scenario __worker:scale:quic:10000` with the worker ending right after its measurement, then `heaptrack_print --print-leaks`; `heap per link` is the same difference as RSS per link, read from glibc's `mallinfo2`; task sizes from `-Zprint-type-sizes`). Node b: the router session's task (1152 bytes: tokio aligns task cells to 128 bytes, so the message loop is kept just under a step; its loop and the queue's `recv_many` are plain futures that keep no argument twice, the RawSocket opening runs in a box freed when done, the rare awaits are boxed and come after the select), its outbound queue (about 0.15 KiB: `crate::queue` allocates nothing until used and carries the realm's kill switch for a slow consumer); the session's transport facts for the meta API are one map per QUIC connection. Node a: one task per link (640 bytes) that drives both of the link's sessions itself: its session on the local realm is attached to the realm task directly (a bounded queue, no serialization), its session on the peer's realm reads and writes the QUIC stream in the same task (`link::remote`: no client task, command queue or per-subscription queues; the state for calls through the link is made on the first call); the link object (spec, status, stop token). Both nodes: the realm's session table and its mesh tables (vec-backed where they hold one entry per link or node: a one-entry hash table has four buckets), quinn's per-stream state (about 1.3 KiB for both ends: send and receive state, acknowledged-range sets, reassembly heaps), glibc's per-allocation overhead (RSS is about 1.1x the heap). No read, write or batch buffer is held by an idle link: each is given back when its queue or socket goes quiet. quinn's stream tables are per connection: about 55 B per stream the accepting side allows (5.5 MiB at max_streams = 100,000; a connector allows none, since only connectors open streams), which weighs on the per-link figure at 1k links and disappears at 100k.".into(),
        format!("fds per link counts /proc/self/fd; both ends are in this process, so a TCP link shows 2 (one per node). TCP links are measured up to {} (the fd limit {} / 2 with a margin); QUIC uses one UDP socket per node whatever N.", human(tcp_ceiling()), fd_limit()),
    ];
    result.plot(
        "scale-rss",
        "RSS per link",
        "Resident memory per idle realm link (KiB, both ends)",
    );
    result.plot(
        "scale-time",
        "time to link all",
        "Time to link N realms (s)",
    );
    let biggest = configs
        .iter()
        .filter(|(v, _)| *v == "quic")
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    let case = format!("{} links", human(biggest));
    let per_link = result.median(&case, "quic", "RSS per link");
    let met = per_link.is_some_and(|r| r <= 8.0) && biggest >= 100_000;
    result.targets.push(crate::bench::Target {
        goal: "100k realm links on one QUIC connection with <= 8 KiB RSS per idle link".into(),
        measured: per_link.map_or("not measured".into(), |r| {
            format!("{r:.1} KiB per link at {}", human(biggest))
        }),
        met: per_link.map(|_| met),
        margin: match per_link {
            Some(r) if biggest < 100_000 => format!(
                "100k not run; at {r:.1} KiB/link 100k would take ≈ {:.1} GiB ({:.1}x the bound)",
                r * 100_000.0 / 1024.0 / 1024.0,
                r / 8.0
            ),
            Some(r) => format!("{:.2}x the bound", r / 8.0),
            None => "-".into(),
        },
    });
    result.notes.extend(errors);
    read(&mut result, &configs);
    Ok(result)
}

fn read(result: &mut ScenarioResult, configs: &[(&str, usize)]) {
    for (variant, n) in configs {
        let case = format!("{} links", human(*n));
        if let (Some(rss), Some(t), Some(fds)) = (
            result.median(&case, variant, "RSS per link"),
            result.median(&case, variant, "time to link all"),
            result.median(&case, variant, "fds per link"),
        ) {
            result.notes.push(format!("{variant}, {case}: {rss:.1} KiB per link (both ends), {t:.1} s to link all, {fds:.2} fds per link."));
        }
    }
}
