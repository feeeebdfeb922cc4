//! Ordered background production of numbered items (batches) on worker threads.
//!
//! Worker `w` of `n` makes items `first + w, first + w + n, ...` and sends them into its own bounded
//! channel; the consumer reads the channels round-robin. So the order is fixed without a reorder
//! buffer, each worker runs at most `depth` items ahead (memory is bounded), and since an item is a
//! pure function of its number, what comes out does not depend on the thread count or on timing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

type Make<T> = Arc<dyn Fn(u64) -> T + Send + Sync>;

/// An iterator over items `first..end` made by `make`, ahead of the consumer.
pub struct Prefetch<T: Send + 'static> {
    next: u64,
    first: u64,
    end: u64,
    receivers: Vec<Receiver<T>>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// With no workers, items are made on the consumer's thread.
    inline: Option<Make<T>>,
}

impl<T: Send + 'static> Prefetch<T> {
    /// Items `first..end` from `workers` threads, each with up to `depth` items ready (at least 1).
    pub(crate) fn new(first: u64, end: u64, workers: usize, depth: usize, make: Make<T>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = sync_channel(depth.max(1));
            let (make, stop) = (make.clone(), stop.clone());
            let start = first.saturating_add(w as u64);
            let handle = std::thread::Builder::new()
                .name(format!("semisono-batch-{w}"))
                .spawn(move || {
                    let mut i = start;
                    while i < end && !stop.load(Ordering::Relaxed) {
                        // A closed channel means the consumer is gone: stop quietly.
                        if tx.send(make(i)).is_err() {
                            break;
                        }
                        i = i.saturating_add(workers as u64);
                    }
                })
                .expect("cannot start a batch worker thread");
            receivers.push(rx);
            handles.push(handle);
        }
        Prefetch {
            next: first,
            first,
            end,
            receivers,
            workers: handles,
            stop,
            inline: (workers == 0).then_some(make),
        }
    }

    /// Number of the item the next call returns.
    pub fn position(&self) -> u64 {
        self.next
    }
}

impl<T: Send + 'static> Iterator for Prefetch<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.next >= self.end {
            return None;
        }
        let i = self.next;
        self.next += 1;
        if let Some(make) = &self.inline {
            return Some(make(i));
        }
        let w = ((i - self.first) % self.receivers.len() as u64) as usize;
        match self.receivers[w].recv() {
            Ok(item) => Some(item),
            // The worker ended before sending item i, which only a panic does; its message was
            // printed by the panic hook.
            Err(_) => panic!("batch worker {w} stopped before item {i} (it panicked)"),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.end - self.next).ok();
        (left.unwrap_or(usize::MAX), left)
    }
}

impl<T: Send + 'static> Drop for Prefetch<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the channels wakes workers blocked on a full one.
        self.receivers.clear();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squares(first: u64, end: u64, workers: usize) -> Vec<u64> {
        Prefetch::new(first, end, workers, 2, Arc::new(|i| i * i)).collect()
    }

    #[test]
    fn order_does_not_depend_on_workers() {
        let want: Vec<u64> = (5..40).map(|i| i * i).collect();
        for workers in [0, 1, 2, 3, 7] {
            assert_eq!(squares(5, 40, workers), want, "{workers} workers");
        }
        assert!(squares(3, 3, 2).is_empty());
    }

    #[test]
    fn dropping_early_stops_the_workers() {
        // Endless items; a slow consumer that leaves after two. Must not hang.
        let mut p = Prefetch::new(0, u64::MAX, 3, 1, Arc::new(|i| vec![i; 1000]));
        assert_eq!(p.next().unwrap()[0], 0);
        assert_eq!(p.next().unwrap()[0], 1);
        assert_eq!(p.position(), 2);
        drop(p);
    }

    #[test]
    #[should_panic(expected = "batch worker")]
    fn a_worker_panic_reaches_the_consumer() {
        let p = Prefetch::new(
            0,
            10,
            2,
            1,
            Arc::new(|i| {
                assert!(i != 3, "boom");
                i
            }),
        );
        let _ = p.count();
    }
}
