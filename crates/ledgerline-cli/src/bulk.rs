//! `ledgerline bulk`: many files as one run (SPEC §11), with a live display
//! on a terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ledgerline_bulk::{BulkEvent, BulkProcessor, BulkProgress, BulkReport, BulkRun, RunTotals};
use ledgerline_core::Settings;

/// What `bulk` was asked to do, parsed.
pub struct Request {
    pub inputs: Vec<PathBuf>,
    pub json: bool,
    pub out_dir: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub use_optimized: bool,
    pub settings: Settings,
    /// Per-file rejects into this folder.
    pub rejects: Option<(PathBuf, ledgerline_output::RejectsFormat)>,
    /// Per-file clean rows into this folder.
    pub valid: Option<(PathBuf, ledgerline_output::CleanFormat)>,
    /// Every file's clean rows loaded here.
    pub load: Option<ledgerline_output::pg::PgTarget>,
}

/// Runs the request; returns the exit status.
pub fn run(req: Request) -> i32 {
    let files = match ledgerline_bulk::collect_files(&req.inputs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ledgerline: {e}");
            return 2;
        }
    };
    let processor = BulkProcessor::new(req.settings)
        .use_optimized(req.use_optimized)
        .jobs(req.jobs);
    let live = std::io::stderr()
        .is_terminal()
        .then(|| std::sync::Arc::new(Live::new()));
    let outputs = if req.rejects.is_some() || req.valid.is_some() || req.load.is_some() {
        match ledgerline_output::DirOutputs::new(req.rejects.clone(), req.valid.clone()) {
            Ok(o) => Some(std::sync::Arc::new(o.with_load(req.load.clone()))
                as std::sync::Arc<dyn ledgerline_core::rows::FileOutputs>),
            Err(e) => {
                eprintln!("ledgerline: cannot write the outputs: {e}");
                return 2;
            }
        }
    } else {
        None
    };
    let run = BulkRun {
        progress: live.clone().map(|l| l as std::sync::Arc<dyn BulkProgress>),
        outputs,
        ..BulkRun::default()
    };
    let result = processor.run(&files, &run);
    if let Some(live) = &live {
        live.clear();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if req.json {
                crate::print_json(&e.to_report_json());
            } else {
                eprintln!("ledgerline: {}: {}", e.code, e.message);
            }
            return 2;
        }
    };
    if let Some(dir) = &req.out_dir {
        if let Err(e) = write_out_dir(dir, &report) {
            eprintln!("ledgerline: {}: {e}", dir.display());
            return 2;
        }
    }
    if req.json {
        crate::print_json(&serde_json::to_value(&report).unwrap_or_default());
    } else {
        crate::print_stdout(&crate::human::bulk_summary(&report));
    }
    report.exit_status()
}

/// `DIR/summary.json` and `DIR/<n>.json` per file (`n` 1-based).
fn write_out_dir(dir: &Path, report: &BulkReport) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let write = |name: String, value: &serde_json::Value| {
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(name), format!("{text}\n"))
    };
    write("summary.json".into(), &report.summary_json())?;
    for (i, file) in report.files.iter().enumerate() {
        let value = match &file.outcome {
            Ok(r) => serde_json::to_value(r).map_err(std::io::Error::other)?,
            Err(e) => e.to_report_json(),
        };
        write(format!("{}.json", i + 1), &value)?;
    }
    Ok(())
}

/// The live display: one overall bar (files, rows/s, ETA) and one line per
/// running file, drawn on stderr after a short delay.
struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    running: Mutex<Vec<(usize, ProgressBar)>>,
    started: Instant,
}

/// Runs shorter than this print no display at all.
const DELAY: Duration = Duration::from_millis(300);

impl Live {
    fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
        let overall = multi.add(ProgressBar::new(0));
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} files  {msg}  eta {eta}")
        {
            overall.set_style(style.progress_chars("=> "));
        }
        Live {
            multi,
            overall,
            running: Mutex::new(Vec::new()),
            started: Instant::now(),
        }
    }

    fn clear(&self) {
        if let Ok(mut running) = self.running.lock() {
            for (_, bar) in running.drain(..) {
                bar.finish_and_clear();
            }
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }

    fn rate(&self, totals: &RunTotals) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{:.0} rows/s, {:.1} MB/s",
            totals.rows_done as f64 / secs,
            totals.bytes_done as f64 / secs / 1e6
        )
    }
}

impl BulkProgress for Live {
    fn event(&self, event: &BulkEvent<'_>, totals: &RunTotals) {
        if self.started.elapsed() >= DELAY && self.multi.is_hidden() {
            self.multi.set_draw_target(ProgressDrawTarget::stderr());
        }
        match event {
            BulkEvent::Queued { .. } => self.overall.set_length(totals.files_total),
            BulkEvent::Started { index, name } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg}") {
                    bar.set_style(style);
                }
                bar.set_message(name.to_string());
                if let Ok(mut running) = self.running.lock() {
                    running.push((*index, bar));
                }
            }
            BulkEvent::Advanced { index, rows, .. } => {
                if let Ok(running) = self.running.lock() {
                    if let Some((_, bar)) = running.iter().find(|(i, _)| i == index) {
                        bar.set_prefix(rows.to_string());
                        bar.tick();
                    }
                }
                self.overall.set_message(self.rate(totals));
            }
            BulkEvent::Finished { index, .. } => {
                if let Ok(mut running) = self.running.lock() {
                    if let Some(at) = running.iter().position(|(i, _)| i == index) {
                        let (_, bar) = running.remove(at);
                        bar.finish_and_clear();
                        self.multi.remove(&bar);
                    }
                }
                self.overall.set_position(totals.files_done);
                self.overall.set_message(self.rate(totals));
            }
            _ => {}
        }
    }
}
