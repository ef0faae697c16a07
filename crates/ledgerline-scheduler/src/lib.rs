//! An ordered, bounded, cancellable parallel scheduler for chunks of work.
//!
//! [`run_ordered`] pulls items from a producer, hands them to worker threads,
//! and delivers the results to a consumer **in the order the items were
//! produced**:
//!
//! - **Bounded**: at most [`Config::in_flight`] items exist between the
//!   producer and the consumer (queued, being worked on, or waiting in the
//!   reorder buffer), so memory does not grow with the input.
//! - **Pipelined or not**: with [`Config::pipelined`] the producer runs on its
//!   own thread, overlapping with the workers and the consumer; without it,
//!   the calling thread produces a round of items, waits for their results,
//!   consumes them, and repeats.
//! - **Cancellable**: a [`CancelToken`] any caller can trip; every stage
//!   checks it between items and the run ends with
//!   [`ScheduleError::Cancelled`].
//! - **Isolated**: a panic while working on one item is caught, the run ends
//!   with [`ScheduleError::Panicked`] naming the item (by its label), and
//!   nothing hangs.
//!
//! Workers are scoped threads blocking on channels: work items are coarse
//! (thousands of rows), so a pool buys nothing, and blocking receives do not
//! belong on a rayon pool.
//!
//! # Example
//!
//! ```
//! use ledgerline_scheduler::{run_ordered, CancelToken, Config};
//!
//! let mut next = 0u64;
//! let mut sums = Vec::new();
//! run_ordered::<_, _, String>(
//!     &Config { workers: 4, in_flight: 8, pipelined: true },
//!     &CancelToken::new(),
//!     || { next += 1; Ok((next <= 100).then_some(next)) },
//!     |n: &u64| n * n,
//!     |n: &u64| format!("item {n}"),
//!     |sq| { sums.push(sq); Ok(()) },
//! )?;
//! assert_eq!(sums.len(), 100);
//! assert_eq!(sums[9], 100); // results arrive in order
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

/// How a run is scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Items allowed between producer and consumer (at least 1).
    pub in_flight: usize,
    /// Whether the producer runs on its own thread, overlapping the workers.
    pub pipelined: bool,
}

pub use ledgerline_core::CancelToken;

/// Why a run stopped early.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError<E> {
    /// The producer or the consumer failed.
    #[error("{0}")]
    Failed(E),
    /// Work on one item panicked.
    #[error("a worker panicked while processing {label}: {message}")]
    Panicked {
        /// The item's label.
        label: String,
        /// The panic's message.
        message: String,
    },
    /// The cancel token was tripped.
    #[error("cancelled")]
    Cancelled,
}

/// What a finished run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Items produced and consumed.
    pub items: u64,
    /// The most results ever waiting in the reorder buffer.
    pub max_reordered: usize,
}

/// A worker's answer for one item.
enum Outcome<O> {
    Done(O),
    Panicked(String, String),
    /// Not worked on: the run is winding down.
    Skipped,
}

/// Runs `produce` → `work` (on `config.workers` threads) → `consume` (on the
/// calling thread, in production order). `produce` returns `Ok(None)` at the
/// end. `label` describes an item for the panic error (e.g. its row range).
pub fn run_ordered<I, O, E>(
    config: &Config,
    cancel: &CancelToken,
    mut produce: impl FnMut() -> Result<Option<I>, E> + Send,
    work: impl Fn(&I) -> O + Sync,
    label: impl Fn(&I) -> String + Sync,
    mut consume: impl FnMut(O) -> Result<(), E>,
) -> Result<Stats, ScheduleError<E>>
where
    I: Send,
    O: Send,
    E: Send,
{
    let workers = config.workers.max(1);
    let in_flight = config.in_flight.max(1);
    let (item_tx, item_rx) = bounded::<(u64, I)>(in_flight);
    let (result_tx, result_rx) = unbounded::<(u64, Outcome<O>)>();
    // Credits bound the items alive between producer and consumer.
    let (credit_tx, credit_rx) = bounded::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = credit_tx.send(());
    }
    // Tripped by the run itself when it must wind down early.
    let stop = CancelToken::new();
    let mut order = Reorder::new();

    std::thread::scope(|scope| {
        for _ in 0..workers {
            let item_rx = item_rx.clone();
            let result_tx = result_tx.clone();
            let (work, label, stop) = (&work, &label, &stop);
            scope.spawn(move || worker(&item_rx, &result_tx, work, label, stop, cancel));
        }
        drop(item_rx);
        drop(result_tx);

        let result = if config.pipelined {
            let producer = {
                let stop = &stop;
                let produce = &mut produce;
                scope.spawn(move || {
                    let mut seq = 0;
                    let r = produce_items(
                        produce,
                        &item_tx,
                        &credit_rx,
                        &mut seq,
                        u64::MAX,
                        stop,
                        cancel,
                    );
                    drop(item_tx);
                    r
                })
            };
            let consumed = order.consume(&result_rx, &credit_tx, &mut consume, None, cancel);
            // Wind down: wake a producer waiting for credits, drain workers.
            stop.cancel();
            drop(credit_tx);
            while result_rx.recv().is_ok() {}
            let produced = producer.join().unwrap_or(Err(Stopped::Cancelled));
            settle(consumed, produced)
        } else {
            // Rounds: produce up to `in_flight` items, consume their results.
            let mut seq = 0;
            let outcome = loop {
                let before = seq;
                let produced = produce_items(
                    &mut produce,
                    &item_tx,
                    &credit_rx,
                    &mut seq,
                    in_flight as u64,
                    &stop,
                    cancel,
                );
                let round = seq - before;
                let consumed =
                    order.consume(&result_rx, &credit_tx, &mut consume, Some(seq), cancel);
                match (consumed, produced) {
                    (Ok(()), Ok(())) if round == in_flight as u64 => continue,
                    (consumed, produced) => break settle(consumed, produced),
                }
            };
            stop.cancel();
            drop(item_tx);
            while result_rx.recv().is_ok() {}
            outcome
        };
        result.map(|()| Stats {
            items: order.next,
            max_reordered: order.max_waiting,
        })
    })
}

/// Why the producer stopped early.
enum Stopped<E> {
    Failed(E),
    Cancelled,
}

fn settle<E>(
    consumed: Result<(), ScheduleError<E>>,
    produced: Result<(), Stopped<E>>,
) -> Result<(), ScheduleError<E>> {
    match (consumed, produced) {
        (Err(e), _) => Err(e),
        (Ok(()), Ok(())) => Ok(()),
        (Ok(()), Err(Stopped::Failed(e))) => Err(ScheduleError::Failed(e)),
        (Ok(()), Err(Stopped::Cancelled)) => Err(ScheduleError::Cancelled),
    }
}

/// Produces up to `limit` items, numbering them from `*seq`. Ends early
/// (`Ok`) when the producer is exhausted.
fn produce_items<I, E>(
    produce: &mut impl FnMut() -> Result<Option<I>, E>,
    item_tx: &Sender<(u64, I)>,
    credit_rx: &Receiver<()>,
    seq: &mut u64,
    limit: u64,
    stop: &CancelToken,
    cancel: &CancelToken,
) -> Result<(), Stopped<E>> {
    for _ in 0..limit {
        if credit_rx.recv().is_err() || stop.is_cancelled() || cancel.is_cancelled() {
            return Err(Stopped::Cancelled);
        }
        match produce() {
            Err(e) => return Err(Stopped::Failed(e)),
            Ok(None) => return Ok(()),
            Ok(Some(item)) => {
                if item_tx.send((*seq, item)).is_err() {
                    return Err(Stopped::Cancelled);
                }
                *seq += 1;
            }
        }
    }
    Ok(())
}

fn worker<I, O>(
    item_rx: &Receiver<(u64, I)>,
    result_tx: &Sender<(u64, Outcome<O>)>,
    work: &(impl Fn(&I) -> O + Sync),
    label: &(impl Fn(&I) -> String + Sync),
    stop: &CancelToken,
    cancel: &CancelToken,
) {
    while let Ok((seq, item)) = item_rx.recv() {
        let outcome = if stop.is_cancelled() || cancel.is_cancelled() {
            // Answer anyway, so a consumer waiting for this item wakes up,
            // and keep draining so a producer blocked on a full queue does.
            Outcome::Skipped
        } else {
            match catch_unwind(AssertUnwindSafe(|| work(&item))) {
                Ok(value) => Outcome::Done(value),
                Err(payload) => {
                    stop.cancel();
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".to_string());
                    Outcome::Panicked(label(&item), message)
                }
            }
        };
        if result_tx.send((seq, outcome)).is_err() {
            return;
        }
    }
}

/// The reorder buffer: results wait here until every earlier one arrived.
struct Reorder<O> {
    next: u64,
    waiting: BTreeMap<u64, O>,
    max_waiting: usize,
}

impl<O> Reorder<O> {
    fn new() -> Reorder<O> {
        Reorder {
            next: 0,
            waiting: BTreeMap::new(),
            max_waiting: 0,
        }
    }

    /// Receives results and consumes them in order, returning a credit for
    /// each, until the result channel closes or (in rounds) result `until`
    /// is reached.
    fn consume<E>(
        &mut self,
        result_rx: &Receiver<(u64, Outcome<O>)>,
        credit_tx: &Sender<()>,
        consume: &mut impl FnMut(O) -> Result<(), E>,
        until: Option<u64>,
        cancel: &CancelToken,
    ) -> Result<(), ScheduleError<E>> {
        while until.is_none_or(|u| self.next < u) {
            let Ok((seq, outcome)) = result_rx.recv() else {
                break;
            };
            let value = match outcome {
                Outcome::Done(value) => value,
                Outcome::Panicked(label, message) => {
                    return Err(ScheduleError::Panicked { label, message })
                }
                // Skipped because of a panic elsewhere: its report is on the way.
                Outcome::Skipped if !cancel.is_cancelled() => continue,
                Outcome::Skipped => return Err(ScheduleError::Cancelled),
            };
            self.waiting.insert(seq, value);
            self.max_waiting = self.max_waiting.max(self.waiting.len());
            while let Some(value) = self.waiting.remove(&self.next) {
                if cancel.is_cancelled() {
                    return Err(ScheduleError::Cancelled);
                }
                consume(value).map_err(ScheduleError::Failed)?;
                self.next += 1;
                let _ = credit_tx.try_send(());
            }
        }
        if cancel.is_cancelled() {
            return Err(ScheduleError::Cancelled);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    fn config(workers: usize, in_flight: usize, pipelined: bool) -> Config {
        Config {
            workers,
            in_flight,
            pipelined,
        }
    }

    fn run_numbers(cfg: Config, n: u64) -> (Vec<u64>, Stats) {
        let mut i = 0;
        let mut out = Vec::new();
        let stats = run_ordered::<_, _, ()>(
            &cfg,
            &CancelToken::new(),
            || {
                i += 1;
                Ok((i <= n).then_some(i))
            },
            |x: &u64| {
                // Uneven work so results finish out of order.
                if x.is_multiple_of(7) {
                    std::thread::sleep(Duration::from_millis(2));
                }
                x * 10
            },
            |x: &u64| format!("item {x}"),
            |r| {
                out.push(r);
                Ok(())
            },
        )
        .unwrap();
        (out, stats)
    }

    #[test]
    fn results_arrive_in_order_in_both_modes() {
        for pipelined in [true, false] {
            for (workers, in_flight) in [(1, 1), (3, 2), (4, 16), (8, 5)] {
                let (out, stats) = run_numbers(config(workers, in_flight, pipelined), 200);
                assert_eq!(
                    out,
                    (1..=200).map(|x| x * 10).collect::<Vec<_>>(),
                    "{workers} {in_flight} {pipelined}"
                );
                assert_eq!(stats.items, 200);
                assert!(stats.max_reordered <= in_flight, "{stats:?}");
            }
        }
    }

    #[test]
    fn empty_input() {
        for pipelined in [true, false] {
            let (out, stats) = run_numbers(config(2, 4, pipelined), 0);
            assert!(out.is_empty());
            assert_eq!(stats.items, 0);
        }
    }

    #[test]
    fn in_flight_bounds_items_alive() {
        let alive = AtomicU64::new(0);
        let peak = AtomicU64::new(0);
        let mut i = 0;
        run_ordered::<_, _, ()>(
            &config(4, 3, true),
            &CancelToken::new(),
            || {
                i += 1;
                if i > 100 {
                    return Ok(None);
                }
                let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                Ok(Some(i))
            },
            |x: &u64| *x,
            |_| String::new(),
            |_| {
                alive.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
        assert!(
            peak.load(Ordering::SeqCst) <= 3,
            "peak {}",
            peak.load(Ordering::SeqCst)
        );
    }

    #[test]
    fn producer_error_stops_the_run() {
        for pipelined in [true, false] {
            let mut i = 0;
            let r = run_ordered(
                &config(2, 4, pipelined),
                &CancelToken::new(),
                || {
                    i += 1;
                    if i == 50 {
                        Err("bad byte")
                    } else {
                        Ok(Some(i))
                    }
                },
                |x: &u64| *x,
                |_| String::new(),
                |_| Ok(()),
            );
            assert_eq!(r, Err(ScheduleError::Failed("bad byte")));
        }
    }

    #[test]
    fn consumer_error_stops_the_run() {
        let mut i = 0u64;
        let r = run_ordered(
            &config(2, 4, true),
            &CancelToken::new(),
            || {
                i += 1;
                Ok(Some(i)) // endless: only the consumer's error can stop it
            },
            |x: &u64| *x,
            |_| String::new(),
            |x| if x == 30 { Err("full") } else { Ok(()) },
        );
        assert_eq!(r, Err(ScheduleError::Failed("full")));
    }

    #[test]
    fn panic_is_isolated_and_named() {
        for pipelined in [true, false] {
            let mut i = 0u64;
            let mut consumed = Vec::new();
            let r = run_ordered::<_, _, ()>(
                &config(3, 4, pipelined),
                &CancelToken::new(),
                || {
                    i += 1;
                    Ok((i <= 1000).then_some(i))
                },
                |x: &u64| {
                    if *x == 17 {
                        panic!("boom at {x}");
                    }
                    *x
                },
                |x: &u64| format!("rows {}..{}", x * 10, x * 10 + 9),
                |x| {
                    consumed.push(x);
                    Ok(())
                },
            );
            match r {
                Err(ScheduleError::Panicked { label, message }) => {
                    assert_eq!(label, "rows 170..179");
                    assert!(message.contains("boom at 17"), "{message}");
                }
                other => panic!("expected a panic error, got {other:?}"),
            }
            // Everything before the panicking item may have been consumed,
            // in order; nothing after item 17 + in_flight.
            assert!(consumed.windows(2).all(|w| w[1] == w[0] + 1));
            assert!(consumed.len() < 17 + 8);
        }
        // The scheduler is still usable afterwards (nothing poisoned).
        let (out, _) = run_numbers(config(3, 4, true), 50);
        assert_eq!(out.len(), 50);
    }

    #[test]
    fn cancellation_stops_promptly() {
        for pipelined in [true, false] {
            let token = CancelToken::new();
            let started = Instant::now();
            let mut i = 0u64;
            let mut consumed = 0u64;
            let r = run_ordered::<_, _, ()>(
                &config(2, 4, pipelined),
                &token,
                || {
                    i += 1;
                    Ok(Some(i)) // endless
                },
                |x: &u64| {
                    std::thread::sleep(Duration::from_micros(100));
                    *x
                },
                |_| String::new(),
                |_| {
                    consumed += 1;
                    if consumed == 100 {
                        token.cancel();
                    }
                    Ok(())
                },
            );
            assert_eq!(r, Err(ScheduleError::Cancelled));
            assert!((100..100 + 8).contains(&consumed), "{consumed}");
            assert!(started.elapsed() < Duration::from_secs(10));
        }
    }
}
