//! `ledgerline serve` end to end: the real server as a child process on an
//! ephemeral 127.0.0.1 port with a temporary data directory, driven over
//! HTTP by the client library (and raw requests where the client would not
//! misbehave). Every server is killed when its test ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{comparable, temp_dir, Server};
use ledgerline_api::{FileState, JobState, JobStatus};
use ledgerline_client::{Client, ClientError};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Invoice CSV of `copies` times the bundled 10k-row fixture's data rows
/// (made slow enough to watch in a debug build).
fn big_csv(dir: &Path, name: &str, copies: usize) -> PathBuf {
    let text = std::fs::read_to_string(root().join("fixtures/invoices_10k.csv")).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let mut out = String::with_capacity(text.len() * copies);
    out.push_str(header);
    out.push('\n');
    for _ in 0..copies {
        out.push_str(body);
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

/// Uploads `n` generated files of `copies` × 10k rows named `PREFIX<i>.csv`;
/// their ids.
fn upload_big(client: &Client, input: &Path, prefix: &str, n: usize, copies: usize) -> Vec<String> {
    (0..n)
        .map(|i| big_csv(input, &format!("{prefix}{i}.csv"), copies))
        .map(|p| client.upload_file(&p).unwrap().id)
        .collect()
}

/// The fixtures every test uploads: valid and invalid CSV, gzip, Excel.
fn fixture_set(dir: &Path) -> Vec<PathBuf> {
    let names = [
        "csv/basic_valid.csv",
        "csv/due_before_issue.csv",
        "csv/blank_rows.csv",
        "csv/currency_codes.csv",
        "invoices_10k.csv",
    ];
    let mut files: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let from = root().join("fixtures").join(n);
            let to = dir.join(from.file_name().unwrap());
            std::fs::copy(&from, &to).unwrap();
            to
        })
        .collect();
    // Every Excel fixture that is a valid workbook with a golden report.
    for entry in std::fs::read_dir(root().join("fixtures/excel")).unwrap() {
        let p = entry.unwrap().path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        if ["xlsx", "xls", "ods"].contains(&ext)
            && stem.starts_with("basic")
            && !p.with_extension("settings.json").exists()
        {
            let to = dir.join(p.file_name().unwrap());
            std::fs::copy(&p, &to).unwrap();
            files.push(to);
        }
    }
    files.sort();
    files
}

fn api_status(e: &ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (*status, code.clone()),
        other => panic!("not an API error: {other}"),
    }
}

/// Waits for `cond` on the job's state, polling; panics after `limit`.
fn wait_for(
    client: &Client,
    id: &str,
    limit: Duration,
    cond: impl Fn(&JobStatus) -> bool,
) -> JobStatus {
    let started = Instant::now();
    loop {
        let s = client.job(id).unwrap();
        if cond(&s) {
            return s;
        }
        assert!(started.elapsed() < limit, "gave up waiting: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn upload_and_bulk_with_both_processors_equal_the_bulk_command() {
    let input = temp_dir("input");
    let files = fixture_set(&input);
    assert!(files.len() >= 7, "{files:?}");
    let server = Server::fresh(&[]);
    let client = server.client();
    let health = client.health().unwrap();
    assert_eq!(
        (health.status.as_str(), health.store.as_str()),
        ("ok", "embedded")
    );

    // Half raw, half in one multipart request; each upload's hash and size
    // are the file's, and its format is detected.
    let (raw, multi) = files.split_at(files.len() / 2);
    let mut uploaded: Vec<_> = raw.iter().map(|p| client.upload_file(p).unwrap()).collect();
    let paths: Vec<&Path> = multi.iter().map(PathBuf::as_path).collect();
    uploaded.extend(client.upload_files(&paths).unwrap());
    for (info, path) in uploaded.iter().zip(&files) {
        assert_eq!(info.name, path.file_name().unwrap().to_string_lossy());
        assert_eq!(info.size, std::fs::metadata(path).unwrap().len());
        assert_eq!(info.sha256, sha256(path), "{}", info.name);
        let ext = path.extension().unwrap().to_str().unwrap();
        assert_eq!(info.format, if ext == "csv" { "csv" } else { ext });
        assert_eq!(client.file(&info.id).unwrap(), *info);
        // The bytes kept are the bytes sent.
        assert_eq!(
            sha256(&server.data.join("uploads").join(&info.id)),
            info.sha256
        );
    }
    let ids: Vec<String> = uploaded.iter().map(|f| f.id.clone()).collect();

    let mut reports = Vec::new();
    for use_optimized in [true, false] {
        let job = client.bulk(&ids, use_optimized, &BTreeMap::new()).unwrap();
        assert_eq!(job.status_url, format!("/v1/jobs/{}", job.job_id));
        assert_eq!(job.report_url, format!("/v1/jobs/{}/report", job.job_id));
        let mut seen = Vec::new();
        let last = client.watch(&job.job_id, |s| seen.push(s.clone())).unwrap();
        assert_eq!(last.state, JobState::Succeeded);
        assert_eq!(last.use_optimized, use_optimized);
        assert_eq!(last.progress.files_done, files.len() as u64);
        assert_eq!(last.progress.percent, 100.0);
        assert!(last.files.iter().all(|f| f.state == FileState::Done));
        assert!(last.started_at.is_some() && last.finished_at.is_some());
        assert_eq!(
            last.metrics["processor"],
            if use_optimized {
                "optimized"
            } else {
                "standard"
            }
        );
        // Progress never goes back.
        for w in seen.windows(2) {
            assert!(w[1].progress.percent >= w[0].progress.percent, "{seen:?}");
            assert!(w[1].progress.files_done >= w[0].progress.files_done);
        }
        let report = client.report_json(&job.job_id).unwrap();
        assert_eq!(report["ledgerline_bulk_report"], 1);
        for (entry, info) in report["files"].as_array().unwrap().iter().zip(&uploaded) {
            assert_eq!(entry["file_id"], info.id.as_str());
            assert_eq!(entry["path"], info.name.as_str());
        }
        // The typed report reads back the same.
        let typed = client.report(&job.job_id).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), report);
        reports.push(comparable(report));
    }
    assert_eq!(
        reports[0], reports[1],
        "use_optimized true and false differ"
    );

    // The same files through `ledgerline bulk`.
    let out = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
        .args(["bulk", "--json"])
        .arg(&input)
        .output()
        .unwrap();
    let local: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(comparable(local), reports[0]);
}

#[test]
fn progress_moves_and_cancel_keeps_finished_files() {
    let input = temp_dir("big");
    let server = Server::fresh(&[]);
    let client = server.client();
    let ids = upload_big(&client, &input, "big", 6, 5);

    // Progress observed moving, then succeeded.
    let job = client.bulk(&ids, false, &BTreeMap::new()).unwrap();
    let mut seen = Vec::new();
    let last = client.watch(&job.job_id, |s| seen.push(s.clone())).unwrap();
    assert_eq!(last.state, JobState::Succeeded);
    let moving: Vec<f64> = seen
        .iter()
        .filter(|s| s.state == JobState::Running)
        .map(|s| s.progress.percent)
        .collect();
    assert!(moving.len() >= 2, "too few running events: {seen:?}");
    assert!(moving.iter().any(|p| *p > 0.0 && *p < 100.0), "{moving:?}");
    assert!(seen.iter().any(|s| s
        .files
        .iter()
        .any(|f| f.state == FileState::Running && f.rows_done > 0)));
    assert_eq!(last.progress.rows_done, 6 * 50_000);

    // Cancel after the first file: finished files keep their reports.
    let job = client.bulk(&ids, false, &BTreeMap::new()).unwrap();
    wait_for(&client, &job.job_id, Duration::from_secs(120), |s| {
        s.progress.files_done >= 1
    });
    let answer = client.cancel(&job.job_id).unwrap();
    assert_eq!(answer.job_id, job.job_id);
    let last = wait_for(&client, &job.job_id, Duration::from_secs(60), |s| {
        s.state.is_finished()
    });
    assert_eq!(last.state, JobState::Cancelled);
    let report = client.report(&job.job_id).unwrap();
    let (done, cancelled) = common::done_and_cancelled(&report);
    assert!((1..6).contains(&done), "{done} done");
    assert_eq!(done + cancelled, 6);
    assert_eq!(report.summary.failed as usize, cancelled);
    let states = last
        .files
        .iter()
        .filter(|f| f.state == FileState::Done)
        .count();
    assert_eq!(states, done);
    // A cancelled job stays cancelled; cancelling again is fine.
    assert_eq!(
        client.cancel(&job.job_id).unwrap().state,
        JobState::Cancelled
    );
}

#[test]
fn each_error_status_is_provoked() {
    let input = temp_dir("errors");
    let token = "s3cret-token";
    let server = Server::fresh(&[
        "--max-upload-mb",
        "1",
        "--queue-depth",
        "1",
        "--token",
        token,
    ]);
    let anonymous = server.client();
    let client = Client::new(&server.url, Some(token.into())).unwrap();
    let http = reqwest::blocking::Client::new();

    // 401 without or with a wrong token; health needs none.
    assert_eq!(anonymous.health().unwrap().status, "ok");
    let e = anonymous.job(&ledgerline_store::new_id()).unwrap_err();
    assert_eq!(api_status(&e), (401, "unauthorized".into()));
    let wrong = Client::new(&server.url, Some("s3cret-tokem".into())).unwrap();
    assert_eq!(
        api_status(&wrong.file(&ledgerline_store::new_id()).unwrap_err()).0,
        401
    );
    let r = http.get(format!("{}/metrics", server.url)).send().unwrap();
    assert_eq!(r.status(), 401);

    // 404: unknown ids, ids that are no ids, unknown files in a job.
    for e in [
        client.job(&ledgerline_store::new_id()).unwrap_err(),
        client.file("../../etc/passwd").unwrap_err(),
        client.report(&ledgerline_store::new_id()).unwrap_err(),
        client.cancel(&ledgerline_store::new_id()).unwrap_err(),
        client
            .bulk(&[ledgerline_store::new_id()], true, &BTreeMap::new())
            .unwrap_err(),
    ] {
        assert_eq!(api_status(&e), (404, "not_found".into()), "{e}");
    }

    // 413: over the 1 MB limit, raw (declared length) and multipart (streamed).
    let big = big_csv(&input, "big.csv", 1);
    assert!(std::fs::metadata(&big).unwrap().len() > 1 << 20);
    let e = client.upload_file(&big).unwrap_err();
    assert_eq!(api_status(&e).0, 413, "{e}");
    let e = client.upload_files(&[big.as_path()]).unwrap_err();
    assert_eq!(api_status(&e).0, 413, "{e}");
    // A chunked raw body with no declared length is cut off while streaming.
    let chunked = reqwest::blocking::Body::new(std::fs::File::open(&big).unwrap());
    let r = http
        .post(format!("{}/v1/files?name=big.csv", server.url))
        .bearer_auth(token)
        .body(chunked)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    // Nothing half-written is kept.
    let kept: Vec<_> = std::fs::read_dir(server.data.join("uploads"))
        .unwrap()
        .collect();
    assert!(kept.is_empty(), "{kept:?}");

    // 422: content that is no invoice file, with the file-error code; bad settings.
    let empty = input.join("empty.csv");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        api_status(&client.upload_file(&empty).unwrap_err()),
        (422, "empty_file".into())
    );
    let binary = input.join("image.png");
    std::fs::write(
        &binary,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01",
    )
    .unwrap();
    assert_eq!(
        api_status(&client.upload_file(&binary).unwrap_err()),
        (422, "unsupported_format".into())
    );
    let kept: Vec<_> = std::fs::read_dir(server.data.join("uploads"))
        .unwrap()
        .collect();
    assert!(kept.is_empty(), "refused uploads kept: {kept:?}");
    let small: Vec<String> = (0..3)
        .map(|i| {
            let p = input.join(format!("small{i}.csv"));
            std::fs::copy(root().join("fixtures/csv/basic_valid.csv"), &p).unwrap();
            client.upload_file(&p).unwrap().id
        })
        .collect();
    for (name, value) in [
        ("date_order", serde_json::json!("ymd")),
        ("default_currency", serde_json::json!("XXY")),
        ("no_such_setting", serde_json::json!("1")),
        ("memory_threshold", serde_json::json!(10_000_000)),
    ] {
        let settings = BTreeMap::from([(name.to_string(), value)]);
        let e = client.bulk(&small, true, &settings).unwrap_err();
        assert_eq!(
            api_status(&e),
            (422, "invalid_settings".into()),
            "{name}: {e}"
        );
    }

    // 409 while a job is queued or running; 429 when the queue is full.
    // The slow job reads one 0.9 MB file 300 times.
    let text = std::fs::read_to_string(&big).unwrap();
    let cut = text.match_indices('\n').nth(8000).unwrap().0 + 1;
    let mid = input.join("mid.csv");
    std::fs::write(&mid, &text[..cut]).unwrap();
    let mid = client.upload_file(&mid).unwrap().id;
    let slow = client
        .bulk(&vec![mid; 300], false, &BTreeMap::new())
        .unwrap();
    let e = client.report(&slow.job_id).unwrap_err();
    assert_eq!(api_status(&e), (409, "conflict".into()));
    // Fill the queue (depth 1) while `slow` runs or waits; then one more is refused.
    let mut accepted = vec![slow.job_id.clone()];
    let refused = loop {
        match client.bulk(&small, true, &BTreeMap::new()) {
            Ok(j) => accepted.push(j.job_id),
            Err(e) => break e,
        }
        assert!(accepted.len() <= 3, "the queue never filled");
    };
    match &refused {
        ClientError::Api {
            status,
            code,
            retry_after,
            ..
        } => {
            assert_eq!((*status, code.as_str()), (429, "queue_full"));
            assert!(retry_after.is_some_and(|s| s >= 1));
        }
        other => panic!("{other}"),
    }
    // Cancelled, the slow job makes room; its report exists then.
    client.cancel(&slow.job_id).unwrap();
    let ended = client.watch(&slow.job_id, |_| {}).unwrap();
    assert_eq!(ended.state, JobState::Cancelled);
    let report = client.report(&slow.job_id).unwrap();
    assert_eq!(report.files.len(), 300);
    // A finished job's report exists; cancelling a succeeded one is a conflict.
    let last = client.watch(accepted.last().unwrap(), |_| {}).unwrap();
    assert_eq!(last.state, JobState::Succeeded);
    let e = client.cancel(&last.job_id).unwrap_err();
    assert_eq!(api_status(&e).0, 409);
}

#[test]
fn rate_limit_answers_429_and_health_stays_up() {
    let server = Server::fresh(&["--rate-limit", "5"]);
    let http = reqwest::blocking::Client::new();
    let url = format!("{}/v1/files/{}", server.url, ledgerline_store::new_id());
    let mut limited = None;
    for _ in 0..40 {
        let r = http.get(&url).send().unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 404);
    }
    let r = limited.expect("never rate-limited");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Health is not limited.
    for _ in 0..20 {
        assert_eq!(
            http.get(format!("{}/v1/health", server.url))
                .send()
                .unwrap()
                .status(),
            200
        );
    }
}

/// A server on a fresh data directory running a standard-processor job over
/// `files` generated files of `copies` × 10k rows, once `done` of them have
/// finished: the server, its data directory, the upload ids and the job.
fn job_under_way(
    files: usize,
    copies: usize,
    done: u64,
) -> (Server, PathBuf, Vec<String>, ledgerline_api::JobAccepted) {
    let input = temp_dir("under-way");
    let data = temp_dir("data");
    let server = Server::start(&data, &[]);
    let client = server.client();
    let ids = upload_big(&client, &input, "f", files, copies);
    let job = client.bulk(&ids, false, &BTreeMap::new()).unwrap();
    wait_for(&client, &job.job_id, Duration::from_secs(120), |s| {
        s.progress.files_done >= done
    });
    (server, data, ids, job)
}

/// kill -9 while a job runs; the next start resumes it, does not redo the
/// files it had finished, and gives the uninterrupted run's report.
#[test]
fn killed_server_resumes_the_job_without_redoing_files() {
    let (mut server, data, ids, job) = job_under_way(8, 2, 2);
    let client = server.client();
    let before = client.job(&job.job_id).unwrap();
    assert!(
        before.progress.files_done < 8,
        "finished before the kill: {before:?}"
    );
    server.kill9();
    // What was kept on disk for the files finished before the kill.
    let job_dir = data.join("jobs").join(&job.job_id);
    let kept: BTreeMap<String, std::time::SystemTime> = std::fs::read_dir(&job_dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                e.metadata().unwrap().modified().unwrap(),
            )
        })
        .collect();
    assert!(kept.len() >= 2 * 2, "{kept:?}");

    let mut server = Server::start(&data, &[]);
    server.owns_data = true;
    let client = server.client();
    let last = client.watch(&job.job_id, |_| {}).unwrap();
    assert_eq!(last.state, JobState::Succeeded);
    for (name, modified) in &kept {
        let now = std::fs::metadata(job_dir.join(name))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            now, *modified,
            "{name} was written again: the file was redone"
        );
    }
    // The same report as an uninterrupted job on the same uploads.
    let resumed = comparable(client.report_json(&job.job_id).unwrap());
    let again = client.bulk(&ids, false, &BTreeMap::new()).unwrap();
    client.watch(&again.job_id, |_| {}).unwrap();
    assert_eq!(
        resumed,
        comparable(client.report_json(&again.job_id).unwrap())
    );
    assert_eq!(resumed["summary"]["files"], 8);
}

/// SIGTERM: the server stops taking work, exits promptly with status 0, and
/// the running job resumes at the next start.
#[test]
fn sigterm_leaves_the_running_job_resumable() {
    let (mut server, data, _ids, job) = job_under_way(6, 1, 1);
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let mut stderr = String::new();
    if let Some(mut e) = server.child.stderr.take() {
        e.read_to_string(&mut stderr).unwrap();
    }
    let mut server = Server::start(&data, &[]);
    server.owns_data = true;
    let last = server.client().watch(&job.job_id, |_| {}).unwrap();
    assert_eq!(last.state, JobState::Succeeded, "{stderr}");
    assert_eq!(last.progress.files_done, 6);
}

#[test]
fn metrics_and_openapi_describe_the_server() {
    let input = temp_dir("metrics");
    let server = Server::fresh(&[]);
    let client = server.client();
    let http = reqwest::blocking::Client::new();
    let files = fixture_set(&input);
    let ids: Vec<String> = files[..3]
        .iter()
        .map(|p| client.upload_file(p).unwrap().id)
        .collect();
    let job = client.bulk(&ids, true, &BTreeMap::new()).unwrap();
    let last = client.watch(&job.job_id, |_| {}).unwrap();
    assert_eq!(last.state, JobState::Succeeded);
    for key in [
        "elapsed_seconds",
        "rows_per_second",
        "bytes_per_second",
        "peak_memory_bytes",
        "throttle_events",
        "files",
        "rows",
        "bytes",
        "cpu_seconds",
    ] {
        assert!(
            last.metrics.get(key).is_some(),
            "job metrics lack {key}: {}",
            last.metrics
        );
    }
    let text = http
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value("ledgerline_jobs{state=\"succeeded\"}"), 1.0);
    assert_eq!(value("ledgerline_jobs{state=\"queued\"}"), 0.0);
    assert_eq!(value("ledgerline_queue_depth"), 0.0);
    assert_eq!(value("ledgerline_uploads_total"), 3.0);
    let processed: f64 = text
        .lines()
        .filter(|l| l.starts_with("ledgerline_files_processed_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(processed, 3.0);
    let rows = last.progress.rows_done as f64;
    assert_eq!(
        value("ledgerline_rows_processed_total{processor=\"optimized\"}"),
        rows
    );
    assert_eq!(
        value("ledgerline_file_processing_seconds_count{processor=\"optimized\"}"),
        3.0
    );
    assert_eq!(
        value("ledgerline_job_processing_seconds_count{processor=\"optimized\"}"),
        1.0
    );
    assert!(value("ledgerline_process_resident_memory_bytes") > 1e6);
    assert!(value("ledgerline_process_cpu_seconds") > 0.0);

    let doc: Value = http
        .get(format!("{}/v1/openapi.json", server.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/v1/health", "get"),
        ("/v1/files", "post"),
        ("/v1/files/{id}", "get"),
        ("/v1/files/{id}", "delete"),
        ("/v1/bulk-process", "post"),
        ("/v1/jobs/{id}", "get"),
        ("/v1/jobs/{id}", "delete"),
        ("/v1/jobs/{id}/events", "get"),
        ("/v1/jobs/{id}/report", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing"
        );
    }
    for schema in [
        "JobStatus",
        "BulkRequest",
        "ErrorBody",
        "FileInfo",
        "Health",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
    // Unknown paths answer in the error shape.
    let r = http
        .get(format!("{}/v2/nothing", server.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

/// `--max-jobs 2`: two jobs run at once, each planning for half of the
/// memory budget, and both give the reports one job at a time gives.
#[test]
fn concurrent_jobs_share_the_budget() {
    let input = temp_dir("pair");
    let server = Server::fresh(&["--max-jobs", "2", "--memory-threshold", "256"]);
    let client = server.client();
    let ids = upload_big(&client, &input, "p", 4, 2);
    let a = client.bulk(&ids, false, &BTreeMap::new()).unwrap();
    let b = client.bulk(&ids, true, &BTreeMap::new()).unwrap();
    let started = Instant::now();
    let mut both = false;
    while !both && started.elapsed() < Duration::from_secs(60) {
        let h = client.health().unwrap();
        both = h.queue.running == 2;
        let done = client.job(&a.job_id).unwrap().state.is_finished()
            || client.job(&b.job_id).unwrap().state.is_finished();
        if done {
            break;
        }
    }
    assert!(both, "the two jobs never ran at once");
    let ra = client.watch(&a.job_id, |_| {}).unwrap();
    let rb = client.watch(&b.job_id, |_| {}).unwrap();
    for s in [&ra, &rb] {
        assert_eq!(s.state, JobState::Succeeded);
        // Half of the 256 MB threshold each.
        assert_eq!(
            s.metrics["budget_bytes"],
            128 * 1024 * 1024,
            "{}",
            s.metrics
        );
    }
    assert_eq!(
        comparable(client.report_json(&a.job_id).unwrap()),
        comparable(client.report_json(&b.job_id).unwrap())
    );
}

/// `--store redis://…`: the same API and the same reports as the embedded
/// store; health says 503 while Redis is down and recovers when it returns.
#[test]
fn redis_store_serves_the_same_api() {
    let Some(mut redis) = common::Redis::start() else {
        return;
    };
    let input = temp_dir("redis");
    let files = fixture_set(&input);
    let url = redis.url();
    let server = Server::fresh(&["--store", &url, "--store-prefix", "e2e"]);
    let embedded = Server::fresh(&[]);
    let mut reports = Vec::new();
    for s in [&server, &embedded] {
        let client = s.client();
        let ids: Vec<String> = files
            .iter()
            .map(|p| client.upload_file(p).unwrap().id)
            .collect();
        let job = client.bulk(&ids, true, &BTreeMap::new()).unwrap();
        let last = client.watch(&job.job_id, |_| {}).unwrap();
        assert_eq!(last.state, JobState::Succeeded);
        assert_eq!(
            client.job(&job.job_id).unwrap().progress.files_done,
            files.len() as u64
        );
        reports.push(comparable(client.report_json(&job.job_id).unwrap()));
    }
    assert_eq!(reports[0], reports[1]);
    let client = server.client();
    assert_eq!(client.health().unwrap().store, "redis");

    redis.kill();
    let e = client.health().unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    let _redis = common::Redis::start_on(redis.port).unwrap();
    let started = Instant::now();
    while client.health().is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "health never recovered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET `path` on `server`: status, content type and body.
fn get_raw(server: &Server, path: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::blocking::get(format!("{}{path}", server.url)).unwrap();
    let status = r.status().as_u16();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, r.bytes().unwrap().to_vec())
}

/// A job's `outputs`: each file's rejects and clean rows downloadable once
/// it is done, byte for byte what `ledgerline process --rejects
/// --valid-out` writes for that file, on the embedded store and on Redis
/// (whose worker moves them through the file store); none for a file that
/// failed, none for a job that asked for none.
#[test]
fn job_outputs_download_equal_the_command_line() {
    let input = temp_dir("outputs");
    let mut files = Vec::new();
    for n in [
        "invoices_1k.csv",
        "csv/due_before_issue.csv",
        "csv/basic_valid.csv",
    ] {
        let from = root().join("fixtures").join(n);
        let to = input.join(from.file_name().unwrap());
        std::fs::copy(&from, &to).unwrap();
        files.push(to);
    }
    let broken = input.join("broken.csv");
    std::fs::write(&broken, "a,b\n1,2\n").unwrap();
    // What the command line writes for each file.
    let expected: Vec<(Vec<u8>, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let (r, v) = (input.join("expected.rejects"), input.join("expected.jsonl"));
            let out = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
                .arg("process")
                .arg(f)
                .args(["--rejects-format", "csv", "--rejects"])
                .arg(&r)
                .arg("--valid-out")
                .arg(&v)
                .output()
                .unwrap();
            assert!(out.status.code().unwrap() < 2, "{out:?}");
            (std::fs::read(&r).unwrap(), std::fs::read(&v).unwrap())
        })
        .collect();
    assert!(expected[0].0.len() > 200, "invoices_1k has rejects");
    let Some(redis) = common::Redis::start() else {
        return;
    };
    let on_redis = Server::fresh(&["--store", &redis.url(), "--store-prefix", "outputs"]);
    let embedded = Server::fresh(&[]);
    for server in [&embedded, &on_redis] {
        let client = server.client();
        let mut ids: Vec<String> = files
            .iter()
            .map(|p| client.upload_file(p).unwrap().id)
            .collect();
        let broken_id = client.upload_file(&broken).unwrap().id;
        ids.push(broken_id.clone());
        let job = client
            .bulk_request(&ledgerline_api::BulkRequest {
                file_ids: ids.clone(),
                use_optimized: true,
                settings: BTreeMap::new(),
                outputs: ledgerline_api::JobOutputs {
                    rejects: Some(ledgerline_api::RejectsKind::Csv),
                    valid: Some(ledgerline_api::ValidKind::Jsonl),
                    load: false,
                },
            })
            .unwrap();
        let last = client.watch(&job.job_id, |_| {}).unwrap();
        assert_eq!(last.state, JobState::Succeeded);
        assert_eq!(
            serde_json::to_value(client.job(&job.job_id).unwrap().outputs).unwrap(),
            serde_json::json!({"rejects": "csv", "valid": "jsonl"})
        );
        for (id, (rejects, valid)) in ids.iter().zip(&expected) {
            let at = format!("/v1/jobs/{}/files/{id}", job.job_id);
            let (status, kind, body) = get_raw(server, &format!("{at}/rejects"));
            assert_eq!((status, kind.as_str()), (200, "text/csv; charset=utf-8"));
            assert_eq!(body, *rejects, "{at}");
            let (status, kind, body) = get_raw(server, &format!("{at}/valid"));
            assert_eq!((status, kind.as_str()), (200, "application/x-ndjson"));
            assert_eq!(body, *valid, "{at}");
        }
        // The file that failed (missing columns) has none; an unknown
        // file, none.
        let at = format!("/v1/jobs/{}/files/{broken_id}/rejects", job.job_id);
        let (status, _, body) = get_raw(server, &at);
        assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
        let unknown = format!("/v1/jobs/{}/files/{}/valid", job.job_id, "0".repeat(32));
        assert_eq!(get_raw(server, &unknown).0, 404);

        // xlsx and Parquet: their types and magic bytes; a job without
        // outputs has none to give.
        let other = client
            .bulk_request(&ledgerline_api::BulkRequest {
                file_ids: vec![ids[0].clone()],
                use_optimized: false,
                settings: BTreeMap::new(),
                outputs: ledgerline_api::JobOutputs {
                    rejects: Some(ledgerline_api::RejectsKind::Xlsx),
                    valid: Some(ledgerline_api::ValidKind::Parquet),
                    load: false,
                },
            })
            .unwrap();
        assert_eq!(
            client.watch(&other.job_id, |_| {}).unwrap().state,
            JobState::Succeeded
        );
        let at = format!("/v1/jobs/{}/files/{}", other.job_id, ids[0]);
        let (status, kind, body) = get_raw(server, &format!("{at}/rejects"));
        assert_eq!(status, 200);
        assert_eq!(
            kind,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        );
        assert_eq!(&body[..2], b"PK");
        let (status, kind, body) = get_raw(server, &format!("{at}/valid"));
        assert_eq!(
            (status, kind.as_str()),
            (200, "application/vnd.apache.parquet")
        );
        assert_eq!(
            (&body[..4], &body[body.len() - 4..]),
            (&b"PAR1"[..], &b"PAR1"[..])
        );
        // The same through the command-line client: `client bulk --valid`,
        // then `client output`.
        let cli = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
                .args(["client", "--url", &server.url])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let job_id = cli(&["bulk", files[0].to_str().unwrap(), "--valid", "jsonl"]);
        let job_id = job_id.trim();
        cli(&["watch", job_id]);
        let status: JobStatus = serde_json::from_str(&cli(&["status", job_id, "--json"])).unwrap();
        let to = input.join("downloaded.jsonl");
        cli(&[
            "output",
            job_id,
            &status.files[0].file_id,
            "valid",
            "--out",
            to.to_str().unwrap(),
        ]);
        assert_eq!(std::fs::read(&to).unwrap(), expected[0].1);
        let plain = client.bulk(&ids[..1], true, &BTreeMap::new()).unwrap();
        client.watch(&plain.job_id, |_| {}).unwrap();
        let at = format!("/v1/jobs/{}/files/{}/rejects", plain.job_id, ids[0]);
        let (status, _, body) = get_raw(server, &at);
        assert_eq!(status, 404);
        assert!(
            String::from_utf8_lossy(&body).contains("asked for no rejects"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}
