//! The bounded queues between a call's driver and its handles: commands
//! and frames in, events out.
//!
//! Small on purpose: an idle call holds three of them for its whole life,
//! so a queue allocates nothing until something is queued (one `Arc` for
//! both ends, a lock, a `VecDeque` that grows to what it holds), where a
//! tokio channel reserves room for 32 messages up front and pads its
//! counters to cache lines: about 1.5 KB per channel. The lock is never
//! held across anything but the queue's own bookkeeping, and wakers are
//! woken after it is released.
//!
//! Semantics are the usual ones of a multi-producer, single-consumer
//! channel: [`Sender`]s clone; the queue closes for the receiver when the
//! last sender is dropped (after what was queued is read), and for the
//! senders when the [`Receiver`] is dropped (what was queued is dropped
//! with it). Any executor runs them; `blocking_*` park the calling thread.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// A queue of at most `capacity` items (at least 1); its two ends.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        state: Mutex::new(State {
            items: VecDeque::new(),
            receiver: None,
            senders_waiting: Vec::new(),
            senders: 1,
            receiver_alive: true,
        }),
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

/// [`Sender::send`] found the receiver gone; the item comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue's receiver is gone")]
pub struct SendError<T>(pub T);

/// Why [`Sender::try_send`] did not queue an item; the item comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrySendError<T> {
    /// The queue holds its capacity: try again after the receiver reads.
    #[error("the queue is full")]
    Full(T),
    /// The receiver is gone: nothing will be read again.
    #[error("the queue's receiver is gone")]
    Closed(T),
}

/// Why [`Receiver::try_recv`] gave no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing queued now; senders remain.
    #[error("the queue is empty")]
    Empty,
    /// Nothing queued and every sender is gone: nothing will come.
    #[error("the queue's senders are gone")]
    Disconnected,
}

#[derive(Debug)]
struct Shared<T> {
    capacity: usize,
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    /// The receiver's task, waiting for an item or the end.
    receiver: Option<Waker>,
    /// Senders' tasks waiting for room (one waker per task: a task that
    /// polls again replaces nothing and adds nothing).
    senders_waiting: Vec<Waker>,
    senders: usize,
    receiver_alive: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The lock guards plain bookkeeping that no panic leaves half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending end of a queue. Clones send into the same queue.
#[derive(Debug)]
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender { shared: self.shared.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.shared.lock();
            s.senders -= 1;
            if s.senders == 0 { s.receiver.take() } else { None }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Sender<T> {
    /// Queues `value`, waiting while the queue is full. Cancel-safe in the
    /// sense that matters: dropping the future before it completes queues
    /// nothing (the value is dropped with it).
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = Some(value);
        poll_fn(|cx| self.poll_send(cx, &mut value)).await
    }

    fn poll_send(&self, cx: &mut Context<'_>, value: &mut Option<T>) -> Poll<Result<(), SendError<T>>> {
        let Some(v) = value.take() else {
            return Poll::Ready(Ok(()));
        };
        let mut s = self.shared.lock();
        if !s.receiver_alive {
            return Poll::Ready(Err(SendError(v)));
        }
        if s.items.len() < self.shared.capacity {
            s.items.push_back(v);
            let waker = s.receiver.take();
            drop(s);
            if let Some(w) = waker {
                w.wake();
            }
            return Poll::Ready(Ok(()));
        }
        *value = Some(v);
        if !s.senders_waiting.iter().any(|w| w.will_wake(cx.waker())) {
            s.senders_waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Queues `value` if there is room, without waiting.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut s = self.shared.lock();
        if !s.receiver_alive {
            return Err(TrySendError::Closed(value));
        }
        if s.items.len() >= self.shared.capacity {
            return Err(TrySendError::Full(value));
        }
        s.items.push_back(value);
        let waker = s.receiver.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues `value`, blocking this thread while the queue is full. For
    /// threads that are not an async runtime's: called from a task, it
    /// blocks the runtime's worker.
    pub fn blocking_send(&self, value: T) -> Result<(), SendError<T>> {
        block_on(self.send(value))
    }

    /// Items that fit before [`send`](Self::send) waits.
    pub fn capacity(&self) -> usize {
        self.shared.capacity.saturating_sub(self.shared.lock().items.len())
    }

    /// The queue's capacity.
    pub fn max_capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.shared.lock().receiver_alive
    }
}

/// The receiving end of a queue.
#[derive(Debug)]
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (items, waiting, own) = {
            let mut s = self.shared.lock();
            s.receiver_alive = false;
            (std::mem::take(&mut s.items), std::mem::take(&mut s.senders_waiting), s.receiver.take())
        };
        // Queued items and the receiver's own waker are dropped outside
        // the lock (senders that live on must not keep its task alive).
        drop((items, own));
        waiting.into_iter().for_each(Waker::wake);
    }
}

impl<T> Receiver<T> {
    /// The next item, waiting for one; `None` once every sender is gone
    /// and the queue is empty.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next item (see [`recv`](Self::recv)); registers `cx`
    /// to be woken when one comes or the last sender goes.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.shared.lock();
        if let Some(v) = s.items.pop_front() {
            let waiting = std::mem::take(&mut s.senders_waiting);
            drop(s);
            waiting.into_iter().for_each(Waker::wake);
            return Poll::Ready(Some(v));
        }
        if s.senders == 0 {
            return Poll::Ready(None);
        }
        match &mut s.receiver {
            Some(w) => w.clone_from(cx.waker()),
            None => s.receiver = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The next item if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut s = self.shared.lock();
        match s.items.pop_front() {
            Some(v) => {
                let waiting = std::mem::take(&mut s.senders_waiting);
                drop(s);
                waiting.into_iter().for_each(Waker::wake);
                Ok(v)
            }
            None if s.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The next item, blocking this thread until one comes; `None` once
    /// every sender is gone. For threads that are not an async runtime's.
    pub fn blocking_recv(&mut self) -> Option<T> {
        block_on(self.recv())
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Whether nothing is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> futures_util::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }
}

/// Wakes a thread parked on it.
#[derive(Debug)]
pub(crate) struct Unpark(pub(crate) std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread, parked while it waits.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count::default());
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn items_come_out_in_order_up_to_capacity() {
        let (tx, mut rx) = bounded(2);
        assert_eq!(tx.max_capacity(), 2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.capacity(), 0);
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(rx.len(), 2);
        assert_eq!(rx.try_recv(), Ok(1));
        tx.try_send(3).unwrap();
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.try_recv(), Ok(3));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        assert!(rx.is_empty());
    }

    #[test]
    fn zero_capacity_holds_one() {
        let (tx, mut rx) = bounded(0);
        tx.try_send('a').unwrap();
        assert_eq!(tx.try_send('b'), Err(TrySendError::Full('b')));
        assert_eq!(rx.try_recv(), Ok('a'));
    }

    #[test]
    fn the_receiver_is_woken_once_per_registration() {
        let (tx, mut rx) = bounded(8);
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        // The second item finds no registered waker: no second wake-up.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.try_send(3).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_waiting_sender_is_woken_by_room_and_registered_once() {
        let (tx, mut rx) = bounded(1);
        tx.try_send(1).unwrap();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut value = Some(2);
        assert!(tx.poll_send(&mut cx, &mut value).is_pending());
        assert!(tx.poll_send(&mut cx, &mut value).is_pending());
        assert_eq!(tx.shared.lock().senders_waiting.len(), 1, "one waker per task");
        assert_eq!(rx.try_recv(), Ok(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(tx.poll_send(&mut cx, &mut value), Poll::Ready(Ok(())));
        assert_eq!(rx.try_recv(), Ok(2));
    }

    #[test]
    fn the_last_sender_gone_ends_the_queue_after_its_items() {
        let (tx, mut rx) = bounded(4);
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        drop(tx);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        drop(tx2);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the last sender wakes the receiver");
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn the_receiver_gone_closes_the_queue_and_frees_waiting_senders() {
        let (tx, rx) = bounded(1);
        let item = Arc::new(());
        tx.try_send(item.clone()).unwrap();
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut value = Some(Arc::new(()));
        assert!(tx.poll_send(&mut cx, &mut value).is_pending());
        drop(rx);
        assert_eq!(Arc::strong_count(&item), 1, "queued items are dropped with the receiver");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(tx.poll_send(&mut cx, &mut value), Poll::Ready(Err(SendError(_)))));
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send(Arc::new(())), Err(TrySendError::Closed(_))));
    }

    #[test]
    fn blocking_ends_meet_across_threads() {
        let (tx, mut rx) = bounded(2);
        let producer = std::thread::spawn(move || {
            for i in 0..1000u32 {
                tx.blocking_send(i).unwrap();
            }
        });
        let got: Vec<u32> = std::iter::from_fn(|| rx.blocking_recv()).collect();
        producer.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }
}
