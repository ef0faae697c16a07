//! `cargo xtask soak`: a steady load on `ledgerline serve` (loopback only,
//! bounded by `--minutes`) while the server's resident memory and open file
//! descriptors are sampled every `--every` seconds from /proc. After a
//! warm-up minute neither may trend upward: the last samples must stay
//! within a margin of the first ones. Prints the series.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ledgerline_client::Client;

use crate::bench::{ledgerline_bin, start_server, target_dir};

/// Arguments of `cargo xtask soak`.
#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long the load runs.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    every: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Use this binary instead of building the release CLI.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p ledgerline-cli` first.
    #[arg(long)]
    no_build: bool,
}

/// Resident memory (KiB) and open descriptors of `pid`.
fn sample(pid: u32) -> Result<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok((rss, fds))
}

pub fn run(args: &SoakArgs) -> Result<()> {
    let bin = ledgerline_bin(args.bin.as_deref(), args.no_build)?;
    let root = target_dir().join("soak");
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("input");
    std::fs::create_dir_all(&input)?;
    let mut files = Vec::new();
    for i in 0..8u64 {
        let path = input.join(format!("s{i}.csv"));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        crate::gen::generate(2000 + i * 500, i, 0.02, &mut out)?;
        std::io::Write::flush(&mut out)?;
        files.push(path);
    }
    let (mut server, url) = start_server(&bin, &root.join("data"), &["--rate-limit", "0"])?;
    let pid = server.id();

    let stop = Arc::new(AtomicBool::new(false));
    let (jobs, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..args.clients)
        .map(|c| {
            let (stop, jobs, errors, files, url) = (
                Arc::clone(&stop),
                Arc::clone(&jobs),
                Arc::clone(&errors),
                files.clone(),
                url.clone(),
            );
            std::thread::spawn(move || {
                let Ok(client) = Client::new(&url, None) else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let mut round = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let result = (|| -> Result<()> {
                        let mine: Vec<&PathBuf> =
                            files.iter().skip((c + round) % 3).step_by(2).collect();
                        let mut ids = Vec::new();
                        for p in &mine {
                            ids.push(client.upload_file(p)?.id);
                        }
                        let job =
                            client.bulk(&ids, round.is_multiple_of(2), &Default::default())?;
                        let last = client.watch(&job.job_id, |_| {})?;
                        if !last.state.is_finished() {
                            bail!("job {} not finished", job.job_id);
                        }
                        let report = client.report(&job.job_id)?;
                        if report.files.len() != ids.len() {
                            bail!("job {}: {} entries", job.job_id, report.files.len());
                        }
                        for id in &ids {
                            client.delete_file(id)?;
                        }
                        Ok(())
                    })();
                    match result {
                        Ok(()) => jobs.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("client {c}: {e}");
                            errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    round += 1;
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut series = Vec::new();
    println!(
        "ledgerline soak — {} clients for {} min, sampled every {} s",
        args.clients, args.minutes, args.every
    );
    println!(
        "{:>6}  {:>10}  {:>5}  {:>6}",
        "t (s)", "RSS MiB", "fds", "jobs"
    );
    while started.elapsed() < Duration::from_secs(args.minutes * 60) {
        std::thread::sleep(Duration::from_secs(args.every));
        let (rss, fds) = sample(pid)?;
        let t = started.elapsed().as_secs();
        let done = jobs.load(Ordering::Relaxed);
        println!("{t:>6}  {:>10.1}  {fds:>5}  {done:>6}", rss as f64 / 1024.0);
        series.push((t, rss, fds));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = server.wait()?;

    let jobs = jobs.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    println!("{jobs} jobs, {errors} errors; server exit after SIGTERM: {exit}");
    // After the warm-up minute: the mean of the last three samples against
    // the mean of the first three.
    let warm: Vec<&(u64, u64, usize)> = series.iter().filter(|(t, _, _)| *t >= 60).collect();
    if warm.len() < 6 {
        bail!("too few samples after the warm-up minute to judge a trend");
    }
    let mean = |s: &[&(u64, u64, usize)], f: &dyn Fn(&(u64, u64, usize)) -> f64| {
        s.iter().map(|x| f(x)).sum::<f64>() / s.len() as f64
    };
    let (first, last) = (&warm[..3], &warm[warm.len() - 3..]);
    let rss = |x: &(u64, u64, usize)| x.1 as f64 / 1024.0;
    let fds = |x: &(u64, u64, usize)| x.2 as f64;
    let (rss0, rss1) = (mean(first, &rss), mean(last, &rss));
    let (fd0, fd1) = (mean(first, &fds), mean(last, &fds));
    println!("RSS {rss0:.1} → {rss1:.1} MiB; fds {fd0:.1} → {fd1:.1}");
    if errors > 0 || !exit.success() {
        bail!("{errors} client errors; server exit {exit}");
    }
    // A margin for allocator noise: 25 % and 16 MiB of memory, 8 descriptors.
    if rss1 > rss0 * 1.25 + 16.0 {
        bail!("resident memory trends upward: {rss0:.1} → {rss1:.1} MiB");
    }
    if fd1 > fd0 + 8.0 {
        bail!("open descriptors trend upward: {fd0:.1} → {fd1:.1}");
    }
    println!("no upward trend in memory or descriptors");
    Ok(())
}
