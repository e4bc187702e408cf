//! A queue between two threads that is bounded by the bytes its items hold, not by their count.
//!
//! The sidecar's persister writes judged batches to disk. When the disk stalls (an `fsync` that
//! waits seconds for the kernel to write back another file), works pile up: a few large ones at
//! high traffic, many small ones at low traffic. A count bound is then either too small for the
//! first case or far too large for the second; a byte bound holds the same memory in both.
//! Bytes stay counted until the consumer `release`s them, after it has finished with the items.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// A multi-producer, single-consumer queue whose producers block while the bytes pushed and not
/// yet released reach the limit. One item is always admitted into an empty backlog, whatever its
/// size, so an item larger than the limit passes instead of blocking forever.
pub struct Backlog<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    limit: usize,
}

struct State<T> {
    items: VecDeque<(T, usize)>,
    /// Bytes of the items queued or handed out and not released yet.
    held: usize,
    /// Producers waiting in `push` now.
    waiting: usize,
    closed: bool,
}

impl<T> Backlog<T> {
    /// An open, empty backlog that holds up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Backlog {
            state: Mutex::new(State {
                items: VecDeque::new(),
                held: 0,
                waiting: 0,
                closed: false,
            }),
            changed: Condvar::new(),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves the queue consistent (every change is one step),
        // so a poisoned lock is taken over rather than propagated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item`, which holds `bytes`, waiting while the backlog is full. Gives the item back
    /// when the backlog is closed.
    pub fn push(&self, item: T, bytes: usize) -> Result<(), T> {
        let mut state = self.lock();
        while !state.closed && state.held > 0 && state.held + bytes > self.limit {
            state.waiting += 1;
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting -= 1;
        }
        if state.closed {
            return Err(item);
        }
        state.held += bytes;
        state.items.push_back((item, bytes));
        self.changed.notify_all();
        Ok(())
    }

    /// The next item and its bytes, waiting for one; `None` once the backlog is closed and empty.
    pub fn pop(&self) -> Option<(T, usize)> {
        let mut state = self.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Some(item);
            }
            if state.closed {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next item if one is queued now.
    pub fn try_pop(&self) -> Option<(T, usize)> {
        self.lock().items.pop_front()
    }

    /// Frees `bytes` of items the consumer has finished with, letting blocked producers in.
    pub fn release(&self, bytes: usize) {
        let mut state = self.lock();
        state.held = state.held.saturating_sub(bytes);
        self.changed.notify_all();
    }

    /// Stops the backlog: producers get their items back, the consumer drains what is queued.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Bytes pushed and not yet released.
    pub fn held(&self) -> usize {
        self.lock().held
    }

    /// How many producers wait in `push` now, for the backlog being full: the work upstream
    /// of the backlog is held up by the consumer.
    pub fn blocked_producers(&self) -> usize {
        self.lock().waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    /// Waits until `n` producers are blocked in `push` (a minute at most).
    fn until_blocked<T>(backlog: &Backlog<T>, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while backlog.blocked_producers() != n {
            assert!(Instant::now() < deadline, "no producer blocked");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_full_backlog_blocks_the_producer_until_bytes_are_released() {
        let backlog = Arc::new(Backlog::new(100));
        backlog.push("a", 60).expect("open");
        backlog.push("b", 40).expect("fits exactly");
        let pushed = Arc::new(AtomicBool::new(false));
        let producer = std::thread::spawn({
            let (backlog, pushed) = (Arc::clone(&backlog), Arc::clone(&pushed));
            move || {
                backlog.push("c", 10).expect("open");
                pushed.store(true, Ordering::SeqCst);
            }
        });
        // Taking items out does not free their bytes: the consumer still holds them.
        assert_eq!(backlog.pop(), Some(("a", 60)));
        until_blocked(&backlog, 1);
        assert!(!pushed.load(Ordering::SeqCst), "pushed past the limit");
        assert_eq!(backlog.held(), 100);
        backlog.release(60);
        producer.join().expect("producer");
        assert!(pushed.load(Ordering::SeqCst));
        assert_eq!(backlog.blocked_producers(), 0);
        assert_eq!(backlog.held(), 50);
        assert_eq!(backlog.try_pop(), Some(("b", 40)));
        assert_eq!(backlog.try_pop(), Some(("c", 10)));
        assert_eq!(backlog.try_pop(), None);
    }

    #[test]
    fn an_item_larger_than_the_limit_passes_an_empty_backlog() {
        let backlog = Backlog::new(10);
        backlog.push(1, 1_000).expect("admitted when empty");
        assert_eq!(backlog.pop(), Some((1, 1_000)));
    }

    #[test]
    fn closing_wakes_a_blocked_producer_and_ends_the_consumer_after_the_queue() {
        let backlog = Arc::new(Backlog::new(10));
        backlog.push(1, 10).expect("open");
        let producer = std::thread::spawn({
            let backlog = Arc::clone(&backlog);
            move || backlog.push(2, 10)
        });
        until_blocked(&backlog, 1);
        backlog.close();
        assert_eq!(producer.join().expect("producer"), Err(2));
        assert_eq!(backlog.pop(), Some((1, 10)), "queued items are drained");
        assert_eq!(backlog.pop(), None);
        assert_eq!(backlog.push(3, 1), Err(3));
    }
}
