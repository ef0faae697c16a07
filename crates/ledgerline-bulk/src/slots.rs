//! The slots of a bulk run: a counting semaphore that files take in run
//! order.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use ledgerline_core::CancelToken;

/// `total` slots; a file takes one or more and gives them back when done.
#[derive(Debug)]
pub(crate) struct Slots {
    total: usize,
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    pub(crate) fn new(total: usize) -> Slots {
        let total = total.max(1);
        Slots {
            total,
            free: Mutex::new(total),
            freed: Condvar::new(),
        }
    }

    /// Waits until `n` slots (at most all of them) are free and takes them;
    /// gives up early (taking them anyway, for the caller to release) when
    /// `cancel` is tripped.
    pub(crate) fn acquire(&self, n: usize, cancel: &CancelToken) {
        let n = n.min(self.total);
        let Ok(mut free) = self.free.lock() else {
            return;
        };
        while *free < n && !cancel.is_cancelled() {
            // Wake now and then to see the cancel token.
            free = match self.freed.wait_timeout(free, Duration::from_millis(50)) {
                Ok((guard, _)) => guard,
                Err(_) => return,
            };
        }
        *free = free.saturating_sub(n);
    }

    pub(crate) fn release(&self, n: usize) {
        if let Ok(mut free) = self.free.lock() {
            *free = (*free + n.min(self.total)).min(self.total);
        }
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn never_more_than_total_taken() {
        let slots = Arc::new(Slots::new(3));
        let held = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let cancel = CancelToken::new();
        std::thread::scope(|s| {
            for i in 0..12 {
                let n = if i % 4 == 0 { 3 } else { 1 };
                slots.acquire(n, &cancel);
                let now = held.fetch_add(n, Ordering::SeqCst) + n;
                peak.fetch_max(now, Ordering::SeqCst);
                let (slots, held) = (Arc::clone(&slots), Arc::clone(&held));
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(5));
                    held.fetch_sub(n, Ordering::SeqCst);
                    slots.release(n);
                });
            }
        });
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(*slots.free.lock().unwrap(), 3);
    }

    #[test]
    fn cancel_ends_a_wait() {
        let slots = Slots::new(1);
        let cancel = CancelToken::new();
        slots.acquire(1, &cancel);
        cancel.cancel();
        let start = std::time::Instant::now();
        slots.acquire(1, &cancel);
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
