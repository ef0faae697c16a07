//! `cargo xtask load`: a load test of `ledgerline serve`, loopback only,
//! bounded in count and time.
//!
//! Generates `--files` invoice CSVs, starts the release server on an
//! ephemeral 127.0.0.1 port with a fresh data directory, and runs
//! `--clients` threads at once; each uploads its share of the files
//! (checking every answer's sha256 and size against the file), starts one
//! bulk job over them (half the clients with the optimized processor, half
//! with the standard one), polls `GET /v1/jobs/{id}` until the job ends
//! (timing every poll) and checks every entry of the job's report against
//! `ledgerline bulk --json` run locally over the same files. Prints
//! requests per second and the p50/p99 latency of the polls; fails on any
//! 5xx, any mismatch, or a run over `--timeout`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ledgerline_client::{Client, ClientError};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bench::{ledgerline_bin, start_server, target_dir};

/// Arguments of `cargo xtask load`.
#[derive(clap::Args)]
pub struct LoadArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Files in all, shared among the clients.
    #[arg(long, default_value_t = 1000)]
    files: usize,
    /// Data rows per file.
    #[arg(long, default_value_t = 200)]
    rows: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Jobs the server runs at once.
    #[arg(long, default_value_t = 2)]
    max_jobs: usize,
    /// Use this binary instead of building the release CLI.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p ledgerline-cli` first.
    #[arg(long)]
    no_build: bool,
}

/// What the clients counted together.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    server_errors: AtomicU64,
    bytes_up: AtomicU64,
    poll_micros: Mutex<Vec<u64>>,
    problems: Mutex<Vec<String>>,
}

impl Tally {
    fn problem(&self, text: String) {
        if let Ok(mut p) = self.problems.lock() {
            p.push(text);
        }
    }

    /// Counts one request and its outcome.
    fn count<T>(&self, r: Result<T, ClientError>) -> Result<T, ClientError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = &r {
            if e.status().is_none_or(|s| s >= 500) {
                self.server_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }
}

/// A report entry in the form compared: no metrics or messages.
fn comparable(mut report: Value) -> Value {
    ledgerline_core::strip_for_comparison(&mut report);
    report
}

pub fn run(args: &LoadArgs) -> Result<()> {
    if args.clients == 0 || args.files < args.clients {
        bail!("--files must be at least --clients (and both above 0)");
    }
    let bin = ledgerline_bin(args.bin.as_deref(), args.no_build)?;
    let root = target_dir().join("load");
    let _ = std::fs::remove_dir_all(&root);
    let (input, data) = (root.join("input"), root.join("data"));
    std::fs::create_dir_all(&input)?;
    let mut files = Vec::with_capacity(args.files);
    for i in 0..args.files {
        let path = input.join(format!("f{i:05}.csv"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        crate::gen::generate(args.rows + (i as u64 % 7) * 10, i as u64, 0.02, &mut out)?;
        std::io::Write::flush(&mut out)?;
        files.push(path);
    }
    eprintln!("generated {} files under {}", files.len(), input.display());

    // What each file's report must be: the bulk command, locally.
    let local = Command::new(&bin)
        .args(["bulk", "--json"])
        .arg(&input)
        .output()
        .context("cannot run ledgerline bulk")?;
    let local: Value = serde_json::from_slice(&local.stdout).context("ledgerline bulk --json")?;
    let mut expected: HashMap<String, Value> = HashMap::new();
    for entry in local["files"]
        .as_array()
        .context("no files in the local report")?
    {
        let name = Path::new(entry["path"].as_str().unwrap_or_default())
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        expected.insert(name, comparable(entry["report"].clone()));
    }

    let max_jobs = args.max_jobs.to_string();
    let (mut server, url) = start_server(
        &bin,
        &data,
        &[
            "--rate-limit",
            "0",
            "--queue-depth",
            "10000",
            "--max-jobs",
            &max_jobs,
        ],
    )?;
    eprintln!("server {url}; {} clients", args.clients);

    let tally = Arc::new(Tally::default());
    let expected = Arc::new(expected);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let started = Instant::now();
    let files = Arc::new(files);
    let handles: Vec<_> = (0..args.clients)
        .map(|c| {
            let (tally, expected, files, url) = (
                Arc::clone(&tally),
                Arc::clone(&expected),
                Arc::clone(&files),
                url.clone(),
            );
            let clients = args.clients;
            std::thread::spawn(move || {
                if let Err(e) = one_client(c, clients, &url, &files, &expected, &tally, deadline) {
                    tally.problem(format!("client {c}: {e}"));
                }
            })
        })
        .collect();
    for h in handles {
        if h.join().is_err() {
            tally.problem("a client thread panicked".into());
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let exit = server.wait()?;

    let requests = tally.requests.load(Ordering::Relaxed);
    let mut polls = tally
        .poll_micros
        .lock()
        .map(|p| p.clone())
        .unwrap_or_default();
    polls.sort_unstable();
    let pct = |q: f64| -> f64 {
        if polls.is_empty() {
            return 0.0;
        }
        let i = ((polls.len() as f64 - 1.0) * q).round() as usize;
        polls[i] as f64 / 1000.0
    };
    println!(
        "ledgerline load — {} clients, {} files of ~{} rows, server --max-jobs {}",
        args.clients, args.files, args.rows, args.max_jobs
    );
    println!(
        "wall {wall:.2} s; {requests} requests ({:.0}/s); uploads {:.1} MB ({:.1} MB/s)",
        requests as f64 / wall,
        tally.bytes_up.load(Ordering::Relaxed) as f64 / 1e6,
        tally.bytes_up.load(Ordering::Relaxed) as f64 / 1e6 / wall
    );
    println!(
        "GET /v1/jobs/{{id}}: {} polls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        polls.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    let server_errors = tally.server_errors.load(Ordering::Relaxed);
    println!("5xx or transport errors: {server_errors}; server exit after SIGTERM: {exit}");
    let problems = tally.problems.lock().map(|p| p.clone()).unwrap_or_default();
    for p in problems.iter().take(20) {
        println!("problem: {p}");
    }
    if !problems.is_empty() || server_errors > 0 || !exit.success() {
        bail!("{} problems, {server_errors} server errors", problems.len());
    }
    println!("every upload's sha256 and every report entry checked: all right");
    Ok(())
}

fn one_client(
    c: usize,
    clients: usize,
    url: &str,
    files: &[PathBuf],
    expected: &HashMap<String, Value>,
    tally: &Tally,
    deadline: Instant,
) -> Result<()> {
    let client = Client::new(url, None)?;
    let mine: Vec<&PathBuf> = files.iter().skip(c).step_by(clients).collect();
    let mut ids = Vec::with_capacity(mine.len());
    for path in &mine {
        let bytes = std::fs::read(path)?;
        let info = tally.count(client.upload_file(path))?;
        tally
            .bytes_up
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let sha = hex::encode(Sha256::digest(&bytes));
        if info.sha256 != sha || info.size != bytes.len() as u64 {
            tally.problem(format!(
                "{}: uploaded as {} bytes sha256 {}, is {} bytes {sha}",
                path.display(),
                info.size,
                info.sha256,
                bytes.len()
            ));
        }
        ids.push(info.id);
    }
    let job = tally.count(client.bulk(&ids, c.is_multiple_of(2), &Default::default()))?;
    let status = loop {
        if Instant::now() > deadline {
            bail!("job {} not done before the deadline", job.job_id);
        }
        let t = Instant::now();
        let s = tally.count(client.job(&job.job_id))?;
        let micros = t.elapsed().as_micros() as u64;
        if let Ok(mut p) = tally.poll_micros.lock() {
            p.push(micros);
        }
        if s.state.is_finished() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.state != ledgerline_api::JobState::Succeeded {
        bail!("job {} ended {:?}", job.job_id, status.state);
    }
    let report = tally.count(client.report_json(&job.job_id))?;
    let entries = report["files"]
        .as_array()
        .context("no files in a job report")?;
    if entries.len() != mine.len() {
        bail!(
            "job {}: {} entries for {} files",
            job.job_id,
            entries.len(),
            mine.len()
        );
    }
    for (entry, path) in entries.iter().zip(&mine) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if entry["path"] != name.as_str() {
            tally.problem(format!(
                "job {}: entry {} for file {name}",
                job.job_id, entry["path"]
            ));
        }
        if Some(&comparable(entry["report"].clone())) != expected.get(&name) {
            tally.problem(format!(
                "job {}: {name}: the report differs from ledgerline bulk",
                job.job_id
            ));
        }
    }
    Ok(())
}
