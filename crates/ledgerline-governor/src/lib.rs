//! The memory governor: the only crate that reads system memory.
//!
//! From the `memory_threshold` setting and the memory actually available, a
//! [`Governor`] decides how many worker threads run, how many rows a chunk
//! holds (learned from the bytes per row of the first chunk) and how many
//! chunks may be in flight, so the work in memory stays within a budget
//! whatever the file size. While a file is processed, a [`Monitor`] samples
//! the process's resident memory, keeps the peak, and raises a throttle flag
//! when it nears the threshold; the processor then waits before reading more.
//! Every decision is recorded for the report's metrics.
//!
//! # Example
//!
//! ```
//! use ledgerline_core::{RunLimits, Settings};
//! use ledgerline_governor::Governor;
//!
//! let mut settings = Settings::default();
//! settings.apply("memory_threshold", "128")?;
//! settings.apply("workers", "64")?;
//! let governor = Governor::new(&settings);
//! // Never more workers than cores, whatever max_workers says.
//! assert!(governor.workers() <= std::thread::available_parallelism()?.get());
//! let plan = governor.plan(120.0);
//! assert!(plan.chunk_rows >= 1 && plan.in_flight >= 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledgerline_core::{RunLimits, Settings};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Bytes in a megabyte as the settings count them.
const MB: u64 = 1024 * 1024;
/// Share of the budget that in-flight chunks may take; the rest is left for
/// the per-file state (invoice anchors, sums), buffers and the allocator.
const CHUNK_SHARE: f64 = 0.5;
/// A chunk in flight costs its records plus validation results: this many
/// times the bytes of its raw rows.
const CHUNK_OVERHEAD: f64 = 3.0;
/// Resident memory above this share of the budget raises the throttle flag.
const THROTTLE_AT: f64 = 0.85;
/// Throttle waits that did not help before throttling gives up.
const FUTILE_WAITS: u64 = 3;

/// What the governor decided for one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Worker threads.
    pub workers: usize,
    /// Rows per chunk.
    pub chunk_rows: usize,
    /// Chunks allowed between reading and merging.
    pub in_flight: usize,
    /// The memory budget, in bytes: the threshold, or less when less is
    /// available.
    pub budget_bytes: u64,
}

/// Sizes work to a memory budget and watches resident memory.
#[derive(Debug)]
pub struct Governor {
    /// What this run plans its chunks for: the whole budget, or the share a
    /// bulk run granted it.
    budget: u64,
    /// Where throttling starts: resident memory is the whole process's, so
    /// the line is the whole budget even when this run plans for a share.
    throttle_budget: u64,
    workers: usize,
    chunk_size: usize,
    /// Chunks in flight wanted per worker: 2, or 4 at optimization level 3.
    depth: usize,
    baseline: u64,
    state: Arc<Shared>,
}

/// Chunks in flight wanted per worker at optimization level 3: a deeper
/// pipeline, more memory for fewer stalls of the in-order merge behind a
/// slow chunk.
pub const DEEP_PIPELINE: usize = 4;

#[derive(Debug, Default)]
struct Shared {
    peak: AtomicU64,
    throttle: AtomicBool,
    throttled: AtomicU64,
    /// Throttle waits in a row after which memory was still high.
    futile: AtomicU64,
    decisions: Mutex<Vec<String>>,
}

impl Governor {
    /// A governor for `settings`: reads the memory available and the number
    /// of cores once.
    pub fn new(settings: &Settings) -> Governor {
        Governor::with_limits(settings, RunLimits::default())
    }

    /// A governor for one run of a larger schedule (a bulk run): it plans
    /// for the workers and the share of memory in `limits` (each at most
    /// what `settings` allow), and throttles at the whole budget.
    pub fn with_limits(settings: &Settings, limits: RunLimits) -> Governor {
        let mut sys = System::new().ok();
        let available = sys.as_mut().map_or(0, |s| {
            s.refresh_memory();
            s.available_memory()
        });
        let whole = budget(settings, available);
        let budget = limits
            .memory_bytes
            .map_or(whole, |share| share.clamp(MIN_SHARE.min(whole), whole));
        let cpus = cores();
        let workers = limits
            .workers
            .unwrap_or(settings.max_workers)
            .min(settings.max_workers)
            .clamp(1, cpus);
        let baseline = if limits.memory_bytes.is_some() {
            // Beside other files the process's resident memory is theirs
            // too; the share is this run's own.
            0
        } else {
            sys.as_mut().and_then(resident).unwrap_or(0)
        };
        let g = Governor {
            budget,
            throttle_budget: whole,
            workers,
            chunk_size: settings.chunk_size.max(1),
            depth: if settings.optimization_level >= 3 {
                DEEP_PIPELINE
            } else {
                2
            },
            baseline,
            state: Arc::new(Shared::default()),
        };
        g.note(format!(
            "budget {} MB{} (threshold {} MB, {} MB available); {} workers ({} cores, max_workers {})",
            budget / MB,
            if limits.memory_bytes.is_some() {
                " granted by the bulk run"
            } else {
                ""
            },
            settings.memory_threshold_mb,
            available / MB,
            workers,
            cpus,
            settings.max_workers
        ));
        g
    }

    /// Worker threads for CPU-bound stages: `max_workers` clamped to the
    /// number of cores.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The memory budget in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Plans chunks for rows of `bytes_per_row` bytes (measured on the first
    /// chunk): the configured chunk size unless the chunks in flight would
    /// not fit the budget, and enough chunks in flight to keep every worker
    /// busy.
    pub fn plan(&self, bytes_per_row: f64) -> Plan {
        let bytes_per_row = bytes_per_row.max(1.0);
        let room = (self.budget.saturating_sub(self.baseline) as f64 * CHUNK_SHARE).max(MB as f64);
        let want_in_flight = self.depth * self.workers + 2;
        let chunk_cost = |rows: usize| rows as f64 * bytes_per_row * CHUNK_OVERHEAD;
        let mut chunk_rows = self.chunk_size;
        let mut in_flight = want_in_flight;
        if chunk_cost(chunk_rows) * in_flight as f64 > room {
            // First give up in-flight depth down to one chunk per worker plus
            // one, then shrink chunks.
            in_flight = ((room / chunk_cost(chunk_rows)) as usize).max(self.workers + 1);
            if chunk_cost(chunk_rows) * in_flight as f64 > room {
                chunk_rows =
                    ((room / (in_flight as f64 * bytes_per_row * CHUNK_OVERHEAD)) as usize).max(1);
            }
        }
        let plan = Plan {
            workers: self.workers,
            chunk_rows,
            in_flight: in_flight.max(1),
            budget_bytes: self.budget,
        };
        self.note(format!(
            "{:.0} bytes/row: chunks of {} rows, {} in flight",
            bytes_per_row, plan.chunk_rows, plan.in_flight
        ));
        plan
    }

    /// Starts sampling resident memory every `interval` on a background
    /// thread until the returned [`Monitor`] is dropped.
    pub fn monitor(&self, interval: Duration) -> Monitor {
        let state = Arc::clone(&self.state);
        let stop = Arc::new(AtomicBool::new(false));
        let throttle_at = (self.throttle_budget as f64 * THROTTLE_AT) as u64;
        let handle = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("ledgerline-governor".into())
                .spawn(move || {
                    let mut sys = System::new().ok();
                    loop {
                        if let Some(rss) = sys.as_mut().and_then(resident) {
                            state.peak.fetch_max(rss, Ordering::Relaxed);
                            let high = rss > throttle_at;
                            if high && !state.throttle.swap(true, Ordering::Relaxed) {
                                state.throttled.fetch_add(1, Ordering::Relaxed);
                            } else if !high {
                                state.throttle.store(false, Ordering::Relaxed);
                            }
                        }
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        std::thread::park_timeout(interval);
                    }
                })
                .ok()
        };
        Monitor { stop, handle }
    }

    /// Whether resident memory is near the budget: the reader should wait
    /// before producing more work.
    pub fn should_throttle(&self) -> bool {
        self.state.throttle.load(Ordering::Relaxed)
    }

    /// Waits while the throttle flag is up, at most `max_wait`; returns
    /// whether it waited. Waiting lets the chunks in flight drain; when
    /// three waits in a row did not bring memory under the line, the memory
    /// is held by something waiting cannot free (the per-file invoice state,
    /// or the allocator keeping freed pages), so throttling stops for the
    /// rest of the run instead of slowing every chunk — and says so in the
    /// decisions.
    pub fn wait_if_throttled(&self, max_wait: Duration) -> bool {
        if !self.should_throttle() || self.state.futile.load(Ordering::Relaxed) >= FUTILE_WAITS {
            return false;
        }
        let start = std::time::Instant::now();
        while self.should_throttle() && start.elapsed() < max_wait {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.should_throttle() {
            if self.state.futile.fetch_add(1, Ordering::Relaxed) + 1 == FUTILE_WAITS {
                self.note(format!(
                    "resident memory stayed above {} MB through {FUTILE_WAITS} waits: throttling stopped",
                    (self.throttle_budget as f64 * THROTTLE_AT) as u64 / MB
                ));
            }
        } else {
            self.state.futile.store(0, Ordering::Relaxed);
        }
        true
    }

    /// The highest resident memory sampled, in bytes (0 before sampling).
    pub fn peak(&self) -> u64 {
        self.state.peak.load(Ordering::Relaxed)
    }

    /// How many times resident memory crossed the throttle line.
    pub fn throttle_events(&self) -> u64 {
        self.state.throttled.load(Ordering::Relaxed)
    }

    /// What the governor decided, in order, as human text.
    pub fn decisions(&self) -> Vec<String> {
        self.state
            .decisions
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Plans a bulk run: how many files may run at once and what each may
    /// use. `jobs` is the user's `--jobs`, if given.
    pub fn bulk(&self, jobs: Option<usize>) -> BulkPlan {
        let cores = self.workers;
        let (slots, fixed) = match jobs {
            Some(n) => (n.max(1), true),
            // As many files as cores, each with a share of the budget large
            // enough to be worth having.
            None => (
                cores.min((self.budget / MIN_SHARE).max(1) as usize).max(1),
                false,
            ),
        };
        let plan = BulkPlan {
            slots,
            cores,
            budget_bytes: self.budget,
            fixed,
        };
        self.note(format!(
            "bulk: {} file slots of {} MB each on {} cores{}",
            plan.slots,
            plan.slot_bytes() / MB,
            plan.cores,
            if fixed { " (--jobs)" } else { "" }
        ));
        plan
    }

    fn note(&self, decision: String) {
        if let Ok(mut d) = self.state.decisions.lock() {
            d.push(decision);
        }
    }
}

/// The memory budget for `settings` with `available` bytes free (0 when
/// unknown): the threshold, but never more than half of what is free.
fn budget(settings: &Settings, available: u64) -> u64 {
    let threshold = settings.memory_threshold_mb.saturating_mul(MB);
    if available > 0 {
        threshold.min(available / 2).max(16 * MB)
    } else {
        threshold
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The smallest memory share worth giving one file of a bulk run.
const MIN_SHARE: u64 = 32 * MB;

/// How a bulk run shares the machine among its files.
///
/// The run has `slots`; each slot is a share of the memory budget and of
/// the cores. A small file (one the processor runs on a single thread)
/// takes one slot; a large file takes every slot, so it runs alone with all
/// the cores and the whole budget. With `--jobs N` every file takes one of
/// N slots. Files start in run order, each as soon as its slots are free,
/// so the files in flight together never plan for more than the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkPlan {
    /// Slots: the most files in flight at once.
    pub slots: usize,
    /// Cores (worker threads) shared by the slots.
    pub cores: usize,
    /// The memory budget of the whole run, in bytes.
    pub budget_bytes: u64,
    /// Whether the user fixed the number of slots (`--jobs`).
    pub fixed: bool,
}

/// What one file of a bulk run is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// Slots the file holds while it runs.
    pub slots: usize,
    /// The limits its processor plans with.
    pub limits: RunLimits,
}

impl BulkPlan {
    /// The memory of one slot, in bytes.
    pub fn slot_bytes(&self) -> u64 {
        self.budget_bytes / self.slots as u64
    }

    /// The share of a file whose processor runs it on worker threads
    /// (`threaded`) or on one thread.
    pub fn share(&self, threaded: bool) -> Share {
        let slots = if threaded && !self.fixed {
            self.slots
        } else {
            1
        };
        let workers = if threaded {
            (self.cores * slots / self.slots).max(1)
        } else {
            1
        };
        Share {
            slots,
            limits: RunLimits {
                workers: Some(workers),
                memory_bytes: Some(self.slot_bytes() * slots as u64),
            },
        }
    }
}

/// Samples resident memory until dropped.
#[derive(Debug)]
pub struct Monitor {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// The resident memory of this process, in bytes.
/// This process's resident memory and CPU time, as a server's monitoring
/// shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessUsage {
    /// Resident memory in bytes.
    pub resident_bytes: u64,
    /// CPU time used so far (user and system), in milliseconds.
    pub cpu_millis: u64,
}

/// Reads [`ProcessUsage`] for this process (zeros where the system does
/// not tell).
pub fn process_usage() -> ProcessUsage {
    let Some(mut sys) = System::new().ok() else {
        return ProcessUsage::default();
    };
    let pid = Pid::from_u32(std::process::id());
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory().with_cpu(),
    );
    sys.process(pid)
        .map_or_else(ProcessUsage::default, |p| ProcessUsage {
            resident_bytes: p.memory(),
            cpu_millis: p.accumulated_cpu_time(),
        })
}

fn resident(sys: &mut System) -> Option<u64> {
    let pid = Pid::from_u32(std::process::id());
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    sys.process(pid).map(|p| p.memory())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn governor(threshold_mb: &str, chunk: &str, workers: &str) -> Governor {
        let mut s = Settings::default();
        s.apply("memory_threshold", threshold_mb).unwrap();
        s.apply("chunk_size", chunk).unwrap();
        s.apply("workers", workers).unwrap();
        Governor::new(&s)
    }

    #[test]
    fn workers_never_exceed_cores() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(governor("1024", "5000", "64").workers(), cpus);
        assert_eq!(governor("1024", "5000", "1").workers(), 1);
    }

    #[test]
    fn roomy_budget_keeps_the_configured_chunk_size() {
        let g = governor("1024", "5000", "2");
        let p = g.plan(120.0);
        assert_eq!(p.chunk_rows, 5000);
        assert_eq!(p.in_flight, 2 * p.workers + 2);
    }

    #[test]
    fn level_3_wants_a_deeper_pipeline_within_the_budget() {
        let mut s = Settings::default();
        s.apply("memory_threshold", "1024").unwrap();
        s.apply("optimization_level", "3").unwrap();
        let p = Governor::new(&s).plan(120.0);
        assert_eq!(p.chunk_rows, 5000);
        assert_eq!(p.in_flight, DEEP_PIPELINE * p.workers + 2);
        // A tight budget still bounds it.
        s.apply("memory_threshold", "16").unwrap();
        s.apply("chunk_size", "1000000").unwrap();
        let g = Governor::new(&s);
        let p = g.plan(1000.0);
        let cost = p.chunk_rows as f64 * 1000.0 * CHUNK_OVERHEAD * p.in_flight as f64;
        assert!(cost <= g.budget() as f64, "{p:?}");
    }

    #[test]
    fn tight_budget_shrinks_in_flight_then_chunks() {
        let g = governor("16", "1000000", "2");
        let p = g.plan(1000.0);
        // 16 MB budget: 1M-row chunks of 1 KB rows cannot fit.
        assert!(p.chunk_rows < 1_000_000);
        let cost = p.chunk_rows as f64 * 1000.0 * CHUNK_OVERHEAD * p.in_flight as f64;
        assert!(cost <= g.budget() as f64, "{p:?}");
        assert!(p.in_flight > p.workers, "{p:?}");
        assert!(!g.decisions().is_empty());
    }

    #[test]
    fn futile_throttling_gives_up() {
        let g = governor("16", "5000", "2");
        // Pretend memory is high and stays high.
        g.state.throttle.store(true, Ordering::Relaxed);
        let start = std::time::Instant::now();
        for _ in 0..100 {
            g.wait_if_throttled(Duration::from_millis(20));
        }
        // Three waits of 20 ms, then no more.
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        assert!(g
            .decisions()
            .iter()
            .any(|d| d.contains("throttling stopped")));
        // When waiting helps, throttling goes on.
        let g = governor("16", "5000", "2");
        g.state.throttle.store(false, Ordering::Relaxed);
        assert!(!g.wait_if_throttled(Duration::from_millis(20)));
    }

    #[test]
    fn limits_shrink_the_plan_but_not_the_throttle_line() {
        let mut s = Settings::default();
        s.apply("memory_threshold", "256").unwrap();
        s.apply("workers", "8").unwrap();
        let whole = Governor::new(&s);
        let limited = Governor::with_limits(
            &s,
            RunLimits {
                workers: Some(1),
                memory_bytes: Some(64 * MB),
            },
        );
        assert_eq!(limited.workers(), 1);
        assert_eq!(limited.budget(), 64 * MB.min(whole.budget()));
        assert_eq!(limited.throttle_budget, whole.budget());
        // A grant never raises what the settings allow.
        let greedy = Governor::with_limits(
            &s,
            RunLimits {
                workers: Some(1000),
                memory_bytes: Some(1 << 40),
            },
        );
        assert_eq!(greedy.budget(), whole.budget());
        assert_eq!(greedy.workers(), whole.workers());
    }

    #[test]
    fn bulk_shares_never_exceed_the_budget() {
        let g = governor("256", "5000", "2");
        let plan = g.bulk(None);
        assert!(plan.slots >= 1 && plan.slots <= g.workers());
        // A large file takes every slot and the cores; a small one a slot.
        let large = plan.share(true);
        assert_eq!(large.slots, plan.slots);
        assert_eq!(large.limits.workers, Some(g.workers()));
        assert_eq!(
            large.limits.memory_bytes,
            Some(plan.slot_bytes() * plan.slots as u64)
        );
        assert!(large.limits.memory_bytes.unwrap() <= g.budget());
        let small = plan.share(false);
        assert_eq!(small.slots, 1);
        assert_eq!(small.limits.workers, Some(1));
        // Any set of files holding at most `slots` slots plans within budget.
        assert!(plan.slot_bytes() * plan.slots as u64 <= g.budget());
        // --jobs: every file one slot of budget / jobs.
        let jobs = g.bulk(Some(8));
        assert_eq!(jobs.slots, 8);
        assert_eq!(jobs.share(true).slots, 1);
        assert_eq!(jobs.share(true).limits.memory_bytes, Some(g.budget() / 8));
        // A tiny budget gives one slot.
        assert_eq!(governor("16", "5000", "2").bulk(None).slots, 1);
    }

    #[test]
    fn monitor_records_a_peak() {
        let g = governor("1024", "5000", "2");
        {
            let _m = g.monitor(Duration::from_millis(5));
            std::thread::sleep(Duration::from_millis(30));
        }
        assert!(g.peak() > 0, "resident memory was sampled");
    }
}
