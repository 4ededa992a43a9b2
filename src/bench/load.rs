//! The workloads: counting subscribers, a windowed publisher (throughput without overrunning
//! any queue), an open-loop probe (latency without coordinated omission), an echo callee and
//! closed-loop callers whose latency histogram is corrected for coordinated omission.
//!
//! Every event carries `[sent_ns, body]`: the send time in ns since the bench's epoch (one
//! process, one monotonic clock) and an opaque byte string of the payload size.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::Session;
use crate::wamp::{Dict, Payload, Value};

use super::Error;

/// Background tasks of one scenario (subscribers, callees); all stop together.
#[derive(Debug, Default)]
pub struct Background {
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Background {
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, work: F) {
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = work => {}
            }
        });
    }

    pub async fn stop(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// A histogram of nanoseconds, 1 ns to 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
}

/// Nanoseconds since `epoch`.
pub fn since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// A byte string of `size` bytes.
pub fn body(size: usize) -> Bytes {
    Bytes::from(vec![0x5a; size])
}

/// Publishes `[now_ns, body]` to `topic` (no acknowledgement).
pub async fn publish_timed(
    publisher: &Session,
    topic: &str,
    body: &Bytes,
    epoch: Instant,
) -> Result<(), Error> {
    let payload = Payload::args(vec![Value::UInt(since(epoch)), Value::Bytes(body.clone())]);
    publisher.publish(topic, payload, Dict::new()).await?;
    Ok(())
}

/// Events received by one subscription, and optionally their one-way latency.
#[derive(Debug)]
pub struct Counter {
    received: AtomicU64,
    notify: Notify,
    latency: Option<Mutex<Histogram<u64>>>,
    epoch: Instant,
}

impl Counter {
    pub fn count(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }

    /// The latency histogram so far (then emptied); `None` if latency is not recorded.
    pub fn take_latency(&self) -> Option<Histogram<u64>> {
        let mut h = self
            .latency
            .as_ref()?
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let taken = h.clone();
        h.reset();
        Some(taken)
    }

    fn record(&self, args: Option<&[Value]>) {
        if let (Some(latency), Some(sent)) = (
            &self.latency,
            args.and_then(|a| a.first()).and_then(Value::as_u64),
        ) {
            let ns = since(self.epoch).saturating_sub(sent).max(1);
            latency
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .saturating_record(ns);
        }
        self.received.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_one();
    }

    /// Waits until the count exceeds `above` or `timeout` passes; true if it did.
    pub async fn wait_above(&self, above: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.count() <= above {
            if tokio::time::timeout_at(deadline, self.notify.notified())
                .await
                .is_err()
            {
                return self.count() > above;
            }
        }
        true
    }

    /// Waits until no event has arrived for 100 ms (at most 10 s): the pipeline is empty.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = self.count();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.count();
            if now == last {
                return;
            }
            last = now;
        }
    }
}

/// Subscribes `session` to `topic` and counts its events in the background.
pub async fn subscribe_counting(
    background: &Background,
    session: &Session,
    topic: &str,
    record_latency: bool,
    epoch: Instant,
) -> Result<Arc<Counter>, Error> {
    let mut subscription = session.subscribe(topic, Dict::new()).await?;
    let counter = Arc::new(Counter {
        received: AtomicU64::new(0),
        notify: Notify::new(),
        latency: record_latency.then(|| Mutex::new(histogram())),
        epoch,
    });
    let shared = Arc::clone(&counter);
    background.spawn(async move {
        while let Some(event) = subscription.next().await {
            shared.record(event.payload.args.as_deref());
        }
    });
    Ok(counter)
}

/// Publishes until `counter` sees an event: the subscriber's interest has reached the
/// publisher's node (it crosses links asynchronously).
pub async fn prime(
    publisher: &Session,
    topic: &str,
    counter: &Counter,
    epoch: Instant,
) -> Result<(), Error> {
    let before = counter.count();
    let body = body(8);
    for _ in 0..400 {
        publish_timed(publisher, topic, &body, epoch).await?;
        if counter.wait_above(before, Duration::from_millis(25)).await {
            counter.settle().await;
            return Ok(());
        }
    }
    Err(format!("no event on {topic} arrived within 10 s").into())
}

/// How a windowed publisher runs.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Events published but not yet received, at most.
    pub window: u64,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What a windowed run delivered.
#[derive(Debug, Clone, Copy)]
pub struct Pumped {
    /// Events received per second during the measured part.
    pub rate: f64,
    /// Events given up on (not received within 250 ms while the window was full).
    pub lost: u64,
}

/// Publishes `body` to `topic` as fast as the window allows and counts what `counter`
/// receives during `measure` (after `warmup`).
pub async fn pump(
    publisher: &Session,
    topic: &str,
    body: &Bytes,
    counter: &Counter,
    window: Window,
    epoch: Instant,
) -> Result<Pumped, Error> {
    let start = Instant::now();
    let base = counter.count();
    let (mut published, mut lost) = (0u64, 0u64);
    let mut measuring: Option<(Instant, u64)> = None;
    loop {
        let now = Instant::now();
        match measuring {
            None if now - start >= window.warmup => measuring = Some((now, counter.count())),
            Some((from, _)) if now - from >= window.measure => break,
            _ => {}
        }
        while published
            .saturating_sub(counter.count() - base)
            .saturating_sub(lost)
            >= window.window
        {
            if tokio::time::timeout(Duration::from_millis(250), counter.notify.notified())
                .await
                .is_err()
            {
                lost = published.saturating_sub(counter.count() - base);
            }
        }
        publish_timed(publisher, topic, body, epoch).await?;
        published += 1;
    }
    let (from, at_start) = measuring.unwrap_or((start, base));
    let rate = (counter.count() - at_start) as f64 / from.elapsed().as_secs_f64();
    counter.settle().await;
    Ok(Pumped { rate, lost })
}

/// Publishes small timed events at `rate_hz` on a fixed schedule (open loop) for `duration`.
pub async fn probe(
    publisher: &Session,
    topic: &str,
    rate_hz: u32,
    duration: Duration,
    epoch: Instant,
) -> Result<u64, Error> {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate_hz.max(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (body, end, mut sent) = (body(64), Instant::now() + duration, 0u64);
    while Instant::now() < end {
        ticks.tick().await;
        publish_timed(publisher, topic, &body, epoch).await?;
        sent += 1;
    }
    Ok(sent)
}

/// Registers `procedure` on `session`, answering every call with its own arguments.
pub async fn serve_echo(
    background: &Background,
    session: &Session,
    procedure: &str,
) -> Result<(), Error> {
    let mut registration = session.register(procedure, Dict::new()).await?;
    background.spawn(async move {
        while let Some(mut invocation) = registration.next().await {
            let payload = std::mem::take(&mut invocation.payload);
            let _ = invocation.result(payload).await;
        }
    });
    Ok(())
}

/// Calls until `procedure` answers (its registration crosses links asynchronously).
pub async fn wait_callable(caller: &Session, procedure: &str) -> Result<(), Error> {
    for _ in 0..400 {
        if caller
            .call(procedure, Payload::default(), Dict::new())
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("{procedure} not callable within 10 s").into())
}

/// The outcome of a closed-loop call run.
#[derive(Debug, Clone)]
pub struct CallStats {
    pub rate: f64,
    /// Latency corrected for coordinated omission (ns).
    pub corrected: Histogram<u64>,
    /// Latency as measured (ns).
    pub raw: Histogram<u64>,
    /// The expected interval used for the correction (ns): the warm-up's median latency.
    pub interval_ns: u64,
}

/// `concurrency` callers on one session, back to back, for `warmup` then `measure`.
///
/// The warm-up's median latency is each caller's expected interval between calls; during the
/// measurement every latency is recorded with `record_correct(latency, interval)`, so a stall
/// also counts the calls a caller could not send while it waited (coordinated omission).
pub async fn call_load(
    caller: &Session,
    procedure: &str,
    concurrency: usize,
    body: &Bytes,
    warmup: Duration,
    measure: Duration,
) -> Result<CallStats, Error> {
    let calibration = closed_loop(caller, procedure, concurrency, body, warmup, None).await?;
    let interval_ns = calibration.raw.value_at_quantile(0.5).max(1);
    let mut stats = closed_loop(
        caller,
        procedure,
        concurrency,
        body,
        measure,
        Some(interval_ns),
    )
    .await?;
    stats.interval_ns = interval_ns;
    Ok(stats)
}

async fn closed_loop(
    caller: &Session,
    procedure: &str,
    concurrency: usize,
    body: &Bytes,
    duration: Duration,
    interval: Option<u64>,
) -> Result<CallStats, Error> {
    let started = Instant::now();
    let end = started + duration;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (caller, procedure, body) = (caller.clone(), procedure.to_owned(), body.clone());
        workers.spawn(async move {
            let (mut raw, mut corrected) = (histogram(), histogram());
            while Instant::now() < end {
                let sent = Instant::now();
                caller
                    .call(
                        &procedure,
                        Payload::args(vec![Value::Bytes(body.clone())]),
                        Dict::new(),
                    )
                    .await?;
                let ns = (sent.elapsed().as_nanos() as u64).max(1);
                raw.saturating_record(ns);
                match interval {
                    Some(i) => corrected
                        .record_correct(ns, i)
                        .unwrap_or_else(|_| corrected.saturating_record(ns)),
                    None => corrected.saturating_record(ns),
                }
            }
            Ok::<_, crate::client::ClientError>((raw, corrected))
        });
    }
    let (mut raw, mut corrected) = (histogram(), histogram());
    while let Some(done) = workers.join_next().await {
        let (r, c) = done.map_err(|e| format!("caller task: {e}"))??;
        raw.add(&r).map_err(|e| format!("{e:?}"))?;
        corrected.add(&c).map_err(|e| format!("{e:?}"))?;
    }
    let rate = raw.len() as f64 / started.elapsed().as_secs_f64();
    Ok(CallStats {
        rate,
        corrected,
        raw,
        interval_ns: 0,
    })
}

/// Nanoseconds to microseconds.
pub fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}
