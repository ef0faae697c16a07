//! `cargo xtask scale`: the same job over many small files with 1, 2 and 4
//! worker processes (SPEC §13), loopback only.
//!
//! Starts a private `redis-server` on a free 127.0.0.1 port and an API-only
//! release server on a `file:///` store, uploads `--files` generated CSVs
//! once, then for each worker count: starts that many `ledgerline worker`
//! processes, submits one job over every file, waits for its end (watching
//! the cheap `/v1/health` queue counts, not the 2,000-file job), and stops
//! the workers. Prints files per second and what Redis did per file:
//! commands (`total_commands_processed`: those run inside scripts count
//! too; the waiting's own health checks taken out), scripts (`EVALSHA`:
//! start, progress, complete, the job's creation and end) and stream reads
//! (`XREADGROUP` + `XAUTOCLAIM`) — the round trips. Checks every job's
//! report against the first one's.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ledgerline_client::Client;

use crate::bench::{ledgerline_bin, start_server, target_dir};

/// Arguments of `cargo xtask scale`.
#[derive(clap::Args)]
pub struct ScaleArgs {
    /// Files in the job.
    #[arg(long, default_value_t = 2000)]
    files: usize,
    /// Data rows per file.
    #[arg(long, default_value_t = 200)]
    rows: u64,
    /// Worker processes to try, in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// Files each worker works on at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Give up on a job after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Use this binary instead of building the release CLI.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p ledgerline-cli` first.
    #[arg(long)]
    no_build: bool,
}

/// Killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Redis's counters that matter here, from `INFO`.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    commands: u64,
    scripts: u64,
    reads: u64,
}

fn counters(conn: &mut redis::Connection) -> Result<Counters> {
    let stats: String = redis::cmd("INFO").arg("stats").query(conn)?;
    let commandstats: String = redis::cmd("INFO").arg("commandstats").query(conn)?;
    let field = |text: &str, key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    // `cmdstat_evalsha:calls=12,usec=…`
    let calls = |name: &str| -> u64 {
        commandstats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Counters {
        commands: field(&stats, "total_commands_processed:"),
        scripts: calls("evalsha") + calls("eval"),
        reads: calls("xreadgroup") + calls("xautoclaim"),
    })
}

pub fn run(args: &ScaleArgs) -> Result<()> {
    if args.files == 0 || args.workers.is_empty() || args.workers.contains(&0) {
        bail!("--files and every --workers count must be above 0");
    }
    let bin = ledgerline_bin(args.bin.as_deref(), args.no_build)?;
    let root = target_dir().join("scale");
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("input");
    std::fs::create_dir_all(&input)?;
    let mut files = Vec::with_capacity(args.files);
    for i in 0..args.files {
        let path = input.join(format!("f{i:05}.csv"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        crate::gen::generate(args.rows, i as u64, 0.02, &mut out)?;
        std::io::Write::flush(&mut out)?;
        files.push(path);
    }
    eprintln!("generated {} files of {} rows", files.len(), args.rows);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _redis = Process(
        Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start redis-server")?,
    );
    let redis_url = format!("redis://127.0.0.1:{port}/");
    let started = Instant::now();
    let mut conn = loop {
        match redis::Client::open(redis_url.as_str())?.get_connection() {
            Ok(c) => break c,
            Err(_) if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => bail!("redis-server did not start: {e}"),
        }
    };
    let files_url = format!("file://{}", root.join("files").display());
    let (server, url) = start_server(
        &bin,
        &root.join("api"),
        &[
            "--store",
            &redis_url,
            "--files",
            &files_url,
            "--no-work",
            "--rate-limit",
            "0",
        ],
    )?;
    let _server = Process(server);
    let client = Client::new(&url, None)?;
    let ids: Vec<String> = files
        .iter()
        .map(|p| client.upload_file(p).map(|u| u.id))
        .collect::<Result<_, _>>()?;
    eprintln!("uploaded {} files", ids.len());

    println!(
        "{:>7}  {:>7}  {:>8}  {:>9}  {:>12}  {:>12}  {:>12}",
        "workers", "files", "seconds", "files/s", "commands/f", "scripts/f", "reads/f"
    );
    let mut first: Option<serde_json::Value> = None;
    for &n in &args.workers {
        let workers: Vec<Process> = (0..n)
            .map(|i| start_worker(&bin, &redis_url, &files_url, &root, i, args.concurrency))
            .collect::<Result<_>>()?;
        let before = counters(&mut conn)?;
        let t0 = Instant::now();
        let job = client.bulk(&ids, true, &BTreeMap::new())?.job_id;
        let mut polls = 0u64;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            polls += 1;
            let health = client.health()?;
            if health.queue.queued == 0 && health.queue.running == 0 {
                break;
            }
            if t0.elapsed() > Duration::from_secs(args.timeout) {
                bail!(
                    "the job with {n} worker(s) did not end within {} s",
                    args.timeout
                );
            }
        }
        let seconds = t0.elapsed().as_secs_f64();
        let after = counters(&mut conn)?;
        drop(workers);
        let status = client.job(&job)?;
        if status.state != ledgerline_api::JobState::Succeeded {
            bail!("the job with {n} worker(s) ended {:?}", status.state);
        }
        let mut report = client.report_json(&job)?;
        ledgerline_core::strip_for_comparison(&mut report);
        match &first {
            None => first = Some(report),
            Some(f) if *f != report => bail!("the report with {n} worker(s) differs"),
            Some(_) => {}
        }
        // Each health answer is one PING and two SCARDs.
        let commands = after.commands - before.commands - polls * 3;
        let per = |x: u64| x as f64 / args.files as f64;
        println!(
            "{n:>7}  {:>7}  {seconds:>8.2}  {:>9.1}  {:>12.2}  {:>12.2}  {:>12.2}",
            args.files,
            args.files as f64 / seconds,
            per(commands),
            per(after.scripts - before.scripts),
            per(after.reads - before.reads),
        );
    }
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "(one run each on {cpus} cores. commands/f: every command Redis ran, those inside \
         scripts included, the job's creation and finish (which reads every file's state \
         once) shared out; round trips per file are scripts/f + reads/f; an idle worker \
         slot also reads once a second)"
    );
    Ok(())
}

fn start_worker(
    bin: &PathBuf,
    redis: &str,
    files: &str,
    root: &std::path::Path,
    i: usize,
    concurrency: usize,
) -> Result<Process> {
    let mut child = Command::new(bin)
        .args([
            "worker",
            "--store",
            redis,
            "--files",
            files,
            "--concurrency",
        ])
        .arg(concurrency.to_string())
        .arg("--spool-dir")
        .arg(root.join(format!("spool-{i}")))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start a worker")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    if !line.starts_with("worker ") {
        let _ = child.kill();
        bail!("a worker did not start: {line:?}");
    }
    Ok(Process(child))
}
