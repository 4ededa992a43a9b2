//! The bounded queue behind every per-session and per-link channel (realm -> session, realm ->
//! link, client connection <-> handles).
//!
//! Why not tokio's mpsc: it allocates its first 32-slot block with the channel, ~0.85 KiB
//! before a single message, and a node with 100k idle realm links keeps five such queues per
//! link. This one is a `VecDeque` under a mutex that allocates nothing until used (~0.16 KiB
//! idle), with the receiver's waker and a `Notify` for senders waiting for room: small enough
//! to read in one sitting. (flume has the same footprint, but with it in these places the
//! kill -9 fault test, `tests/faults.rs`, left a call unanswered in 2 of 8 runs; with this queue
//! it passed 6 of 6. A bounded queue is less code to trust than another crate's async paths.)
//!
//! Unlike tokio's channels, a receive does not take from the task's coop budget: every loop
//! that drains one of these queues also writes to a socket or waits on another bounded queue,
//! so it yields by itself. Forced yields half-way through a burst only split the burst into
//! more and smaller writes, which a QUIC link pays for per packet: with the budget taken, as
//! tokio does, 1 KiB events across a QUIC link ran at 0.90–1.05x plain TCP in four quick
//! `wampmesh bench --scenario throughput --quick` runs; without it 1.29–1.35x (three runs).
//!
//! One receiver, any number of senders. The receiver ends (`None`) once every sender is gone
//! and the queue is empty, or at once when a sender kills the queue (the realm closing a slow
//! consumer: one flag here instead of a cancellation token and its future in every session);
//! senders fail once the receiver is gone. The room a burst made the
//! queue grow to is given back once it is empty again (tens of thousands of sessions would
//! otherwise each keep their largest burst for good); items should be small (boxed).

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

/// A queue holding at most `capacity` items (at least one).
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver_gone: false,
            killed: false,
        }),
        receiver: AtomicWaker::new(),
        room: Notify::new(),
        capacity: capacity.max(1),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The receiver's task: woken by every send and by the last sender leaving.
    receiver: AtomicWaker,
    /// Senders waiting for room: one is woken per item taken, all when the receiver leaves.
    room: Notify,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver_gone: bool,
    /// Set by [`Sender::kill`]: the receiver takes nothing more.
    killed: bool,
}

/// Room an empty queue keeps; more is given back.
const IDLE_ROOM: usize = 8;

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing runs user code under the lock, so a poisoned lock still holds a sound queue.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the first item (none once killed), giving back a burst's room once the queue is
    /// empty.
    fn pop(state: &mut State<T>) -> Option<T> {
        if state.killed {
            return None;
        }
        let item = state.items.pop_front();
        if state.items.is_empty() && state.items.capacity() > IDLE_ROOM {
            state.items = VecDeque::new();
        }
        item
    }
}

/// Why `try_send` gave the item back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue holds `capacity` items.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// The sending half; clones share the queue.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queues `item` if there is room, without waiting.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut state = self.shared.lock();
        if state.receiver_gone {
            return Err(TrySendError::Closed(item));
        }
        if state.items.len() >= self.shared.capacity {
            return Err(TrySendError::Full(item));
        }
        state.items.push_back(item);
        drop(state);
        self.shared.receiver.wake();
        Ok(())
    }

    /// Ends the queue for the receiver at once, queued items or not (they are dropped with the
    /// receiver). Returns false if it was killed already.
    pub fn kill(&self) -> bool {
        let mut state = self.shared.lock();
        let first = !state.killed;
        state.killed = true;
        drop(state);
        self.shared.receiver.wake();
        first
    }

    /// Queues `item`, waiting while the queue is full; gives it back if the receiver is gone.
    /// Cancel-safe: dropped while waiting, the item was not queued.
    pub async fn send(&self, mut item: T) -> Result<(), T> {
        loop {
            let room = self.shared.room.notified();
            let mut room = std::pin::pin!(room);
            // Registered before trying, so room made in between is not missed.
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(back),
                Err(TrySendError::Full(back)) => item = back,
            }
            room.await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.shared.receiver.wake();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("queue::Sender").finish_non_exhaustive()
    }
}

/// The receiving half.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the queue is empty, or once the queue
    /// was killed. Cancel-safe.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next item (see [`Receiver::recv`]).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // Registered before looking, so a send in between wakes this task.
        self.shared.receiver.register(cx.waker());
        let mut state = self.shared.lock();
        match Shared::pop(&mut state) {
            Some(item) => {
                drop(state);
                self.shared.room.notify_one();
                Poll::Ready(Some(item))
            }
            None if state.senders == 0 || state.killed => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// The next item if one is queued (none once killed).
    pub fn try_recv(&mut self) -> Option<T> {
        let item = Shared::pop(&mut self.shared.lock());
        if item.is_some() {
            self.shared.room.notify_one();
        }
        item
    }

    /// Waits for the next item, then moves it and up to `limit - 1` more that are queued into
    /// `items` under one lock; returns how many, 0 once the queue has ended. Cancel-safe: after
    /// the first item nothing waits.
    pub fn recv_many<'a>(
        &'a mut self,
        items: &'a mut Vec<T>,
        limit: usize,
    ) -> impl Future<Output = usize> + 'a {
        // A plain future rather than an `async fn`: the loop of every idle session waits in it,
        // and an `async fn` would keep its arguments twice and the inner receive beside them.
        poll_fn(move |cx| self.poll_recv_many(cx, items, limit))
    }

    fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        items: &mut Vec<T>,
        limit: usize,
    ) -> Poll<usize> {
        let Some(first) = std::task::ready!(self.poll_recv(cx)) else {
            return Poll::Ready(0);
        };
        items.push(first);
        let mut taken = 1;
        let mut state = self.shared.lock();
        while taken < limit {
            let Some(item) = Shared::pop(&mut state) else {
                break;
            };
            items.push(item);
            taken += 1;
        }
        drop(state);
        for _ in 1..taken {
            self.shared.room.notify_one();
        }
        Poll::Ready(taken)
    }

    pub fn is_empty(&self) -> bool {
        self.shared.lock().items.is_empty()
    }

    /// Whether a sender killed the queue (see [`Sender::kill`]).
    pub fn is_killed(&self) -> bool {
        self.shared.lock().killed
    }

    /// Resolves once a sender kills the queue. Uses the receiver's waker slot, so it is meant
    /// for the times the receiver is not receiving (e.g. while it writes out a batch).
    pub async fn killed(&self) {
        poll_fn(|cx| {
            self.shared.receiver.register(cx.waker());
            if self.is_killed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let items = {
            let mut state = self.shared.lock();
            state.receiver_gone = true;
            std::mem::take(&mut state.items)
        };
        // Dropped outside the lock: an item's drop may use another queue.
        drop(items);
        self.shared.room.notify_waiters();
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("queue::Receiver").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn items_come_out_in_order_and_the_end_follows_the_last_sender() {
        let (tx, mut rx) = bounded(4);
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        tx2.try_send(2).unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(1));
        drop(tx2);
        // Queued items still come out after the last sender left.
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_without_waiting_and_a_waiting_send_gets_the_next_room() {
        let (tx, mut rx) = bounded(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        let waiting = tokio::spawn(async move { tx.send(3).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "the send waits while the queue is full"
        );
        assert_eq!(rx.recv().await, Some(1));
        waiting.await.unwrap().unwrap();
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), Some(3));
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn senders_fail_once_the_receiver_is_gone_also_while_waiting() {
        let (tx, rx) = bounded(1);
        tx.try_send(1).unwrap();
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(2));
        assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
    }

    #[tokio::test]
    async fn recv_many_takes_what_is_queued_up_to_the_limit_and_frees_room() {
        let (tx, mut rx) = bounded(4);
        for i in 0..4 {
            tx.try_send(i).unwrap();
        }
        let mut items = Vec::new();
        assert_eq!(rx.recv_many(&mut items, 3).await, 3);
        assert_eq!(items, [0, 1, 2]);
        // The room taken is free again for senders.
        for i in 4..7 {
            tx.try_send(i).unwrap();
        }
        assert_eq!(tx.try_send(7), Err(TrySendError::Full(7)));
        drop(tx);
        assert_eq!(rx.recv_many(&mut items, 64).await, 4);
        assert_eq!(items, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(rx.recv_many(&mut items, 64).await, 0);
    }

    #[tokio::test]
    async fn a_killed_queue_ends_at_once_and_wakes_a_waiting_receiver() {
        let (tx, mut rx) = bounded(4);
        tx.try_send(1).unwrap();
        assert!(!rx.is_killed());
        assert!(tx.kill());
        assert!(!tx.kill(), "the second kill reports it was killed already");
        // Queued items do not come out of a killed queue.
        assert_eq!(rx.try_recv(), None);
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.recv_many(&mut Vec::new(), 8).await, 0);
        assert!(rx.is_killed());
        rx.killed().await;

        let (tx, mut rx) = bounded::<u32>(4);
        let waiting = tokio::spawn(async move {
            let received = rx.recv().await;
            (received, rx.is_killed())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        tx.kill();
        let (received, killed) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the kill wakes the receiver")
            .unwrap();
        assert_eq!((received, killed), (None, true));

        let (tx, rx) = bounded::<u32>(4);
        let watching = tokio::spawn(async move { rx.killed().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!watching.is_finished());
        tx.kill();
        tokio::time::timeout(Duration::from_secs(5), watching)
            .await
            .expect("killed() wakes")
            .unwrap();
    }

    #[test]
    fn an_emptied_queue_gives_back_the_room_of_a_burst() {
        let (tx, mut rx) = bounded(4096);
        for i in 0..1000 {
            tx.try_send(i).unwrap();
        }
        assert!(rx.shared.lock().items.capacity() >= 1000);
        while rx.try_recv().is_some() {}
        assert!(rx.shared.lock().items.capacity() <= IDLE_ROOM);
        // A queue that is never more than a few deep keeps its room.
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(rx.try_recv(), Some(1));
        let room = rx.shared.lock().items.capacity();
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.shared.lock().items.capacity(), room);
    }

    #[tokio::test]
    async fn dropping_the_receiver_drops_what_was_queued() {
        let (tx, rx) = bounded(2);
        let item = Arc::new(());
        tx.try_send(Arc::clone(&item)).unwrap();
        drop(rx);
        assert_eq!(Arc::strong_count(&item), 1);
    }

    /// A receive raced in `select!` against a busy branch, its future dropped and made again
    /// every turn, with senders on other threads: every item arrives and the end is seen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_item_is_lost_when_the_receive_is_raced_and_dropped() {
        const SENDERS: u64 = 4;
        const EACH: u64 = 20_000;
        let (tx, mut rx) = bounded(8);
        for s in 0..SENDERS {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    if i % 3 == 0 {
                        tx.send(s * EACH + i).await.unwrap();
                    } else {
                        let mut item = s * EACH + i;
                        loop {
                            match tx.try_send(item) {
                                Ok(()) => break,
                                Err(TrySendError::Full(back)) => {
                                    item = back;
                                    tokio::task::yield_now().await;
                                }
                                Err(TrySendError::Closed(_)) => panic!("receiver gone"),
                            }
                        }
                    }
                }
            });
        }
        drop(tx);
        let (mut sum, mut count) = (0u64, 0u64);
        let mut ticks = tokio::time::interval(Duration::from_micros(50));
        let received = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                tokio::select! {
                    item = rx.recv() => match item {
                        Some(item) => {
                            sum += item;
                            count += 1;
                        }
                        None => break,
                    },
                    _ = ticks.tick() => {}
                }
            }
        })
        .await;
        assert!(received.is_ok(), "stalled after {count} items");
        let n = SENDERS * EACH;
        assert_eq!(count, n);
        assert_eq!(sum, n * (n - 1) / 2);
    }
}
