//! The interactive mode: a menu that walks a person through a health
//! check, uploads, bulk processing with and without the optimized
//! processor (side by side, with both times and the speedup), and
//! following a job's progress.

use std::path::PathBuf;
use std::time::Instant;

use dialoguer::{Input, Select};
use ledgerline_api::{FileInfo, JobStatus};

use crate::{expand_inputs, progress_bar, show_progress, Client, ClientError};

const MENU: [&str; 7] = [
    "Health check",
    "Upload files",
    "Bulk process (optimized)",
    "Bulk process (standard)",
    "Compare standard and optimized",
    "Track a job",
    "Quit",
];

/// Runs the menu until the person quits. Errors of one action are shown
/// and the menu goes on; only a broken terminal ends it early.
pub fn run(client: &Client) -> Result<(), dialoguer::Error> {
    println!("ledgerline client — server {}", client.url());
    let mut uploaded: Vec<FileInfo> = Vec::new();
    let mut last_job: Option<String> = None;
    loop {
        println!();
        let choice = Select::new()
            .with_prompt(format!(
                "What next? ({} file{} uploaded)",
                uploaded.len(),
                if uploaded.len() == 1 { "" } else { "s" }
            ))
            .items(MENU)
            .default(0)
            .interact()?;
        let outcome = match choice {
            0 => health(client),
            1 => upload(client, &mut uploaded),
            2 | 3 => bulk(client, &uploaded, choice == 2).map(|job| {
                last_job = Some(job.job_id);
            }),
            4 => compare(client, &uploaded),
            5 => {
                let id: String = Input::new()
                    .with_prompt("Job id")
                    .with_initial_text(last_job.clone().unwrap_or_default())
                    .interact_text()?;
                follow(client, id.trim(), "job").map(|s| summary(client, &s))
            }
            _ => return Ok(()),
        };
        if let Err(e) = outcome {
            println!("error: {e}");
        }
    }
}

fn health(client: &Client) -> Result<(), ClientError> {
    let h = client.health()?;
    println!(
        "server {}: {} (version {}, {} store), {} queued, {} running",
        client.url(),
        h.status,
        h.version,
        h.store,
        h.queue.queued,
        h.queue.running
    );
    Ok(())
}

fn upload(client: &Client, uploaded: &mut Vec<FileInfo>) -> Result<(), ClientError> {
    let text: String = Input::new()
        .with_prompt("Files or folders (separated by spaces)")
        .interact_text()
        .map_err(|e| ClientError::Protocol {
            url: client.url().to_string(),
            message: e.to_string(),
        })?;
    let inputs: Vec<PathBuf> = text.split_whitespace().map(PathBuf::from).collect();
    for path in expand_inputs(&inputs)? {
        match client.upload_file(&path) {
            Ok(info) => {
                println!(
                    "  {}  {}  {} bytes  {}  sha256 {}",
                    info.id,
                    info.name,
                    info.size,
                    info.format,
                    &info.sha256[..16]
                );
                uploaded.push(info);
            }
            Err(e) => println!("  {}: refused: {e}", path.display()),
        }
    }
    Ok(())
}

fn ids(uploaded: &[FileInfo]) -> Result<Vec<String>, ClientError> {
    if uploaded.is_empty() {
        return Err(ClientError::Protocol {
            url: String::new(),
            message: "upload some files first".into(),
        });
    }
    Ok(uploaded.iter().map(|f| f.id.clone()).collect())
}

fn bulk(client: &Client, uploaded: &[FileInfo], optimized: bool) -> Result<JobStatus, ClientError> {
    let job = client.bulk(&ids(uploaded)?, optimized, &Default::default())?;
    println!("job {} queued", job.job_id);
    let label = if optimized { "optimized" } else { "standard" };
    let status = follow(client, &job.job_id, label)?;
    summary(client, &status);
    Ok(status)
}

/// Follows a job with a progress bar until it ends.
fn follow(client: &Client, id: &str, label: &str) -> Result<JobStatus, ClientError> {
    let bar = progress_bar(label);
    let status = client.watch(id, |s| show_progress(&bar, s))?;
    show_progress(&bar, &status);
    bar.finish();
    Ok(status)
}

fn seconds(status: &JobStatus) -> Option<f64> {
    status
        .metrics
        .get("elapsed_seconds")
        .and_then(|v| v.as_f64())
}

fn summary(client: &Client, status: &JobStatus) {
    println!(
        "job {}: {} in {}",
        status.job_id,
        status.state.as_str(),
        seconds(status).map_or("?".into(), |s| format!("{s:.3} s"))
    );
    match client.report(&status.job_id) {
        Ok(report) => {
            let s = &report.summary;
            println!(
                "  files {} · valid {} · with invalid rows {} · failed {} · rows {} ({} valid, {} invalid)",
                s.files, s.valid, s.with_invalid_rows, s.failed, s.rows.total, s.rows.valid, s.rows.invalid
            );
            for t in &s.totals {
                println!("  {} gross {} ({} lines)", t.currency, t.gross, t.lines);
            }
        }
        Err(e) => println!("  no report: {e}"),
    }
}

fn compare(client: &Client, uploaded: &[FileInfo]) -> Result<(), ClientError> {
    let ids = ids(uploaded)?;
    let mut rows = Vec::new();
    let mut reports = Vec::new();
    for optimized in [false, true] {
        let label = if optimized { "optimized" } else { "standard" };
        let started = Instant::now();
        let job = client.bulk(&ids, optimized, &Default::default())?;
        let status = follow(client, &job.job_id, label)?;
        let wall = started.elapsed().as_secs_f64();
        rows.push((label, seconds(&status).unwrap_or(wall)));
        reports.push(client.report(&job.job_id)?.comparable_json());
    }
    let (std_s, opt_s) = (rows[0].1, rows[1].1);
    println!();
    println!("{:<10} {:>12}", "processor", "time");
    for (label, s) in &rows {
        println!("{label:<10} {:>10.3} s", s);
    }
    if opt_s > 0.0 {
        println!("speedup    {:>10.2}x", std_s / opt_s);
    }
    println!(
        "reports    {}",
        if reports[0] == reports[1] {
            "identical (metrics aside)"
        } else {
            "DIFFER"
        }
    );
    Ok(())
}
