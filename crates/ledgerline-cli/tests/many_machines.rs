//! SPEC §13 under faults: Redis, an API-only server and three workers as
//! separate processes on loopback, sharing a `file:///` store. One job of
//! 60 files; a worker is killed (SIGKILL) while it holds tasks, Redis is
//! restarted (append-only file on), then stopped for 10 s. The job still
//! ends `succeeded`, its report equals `ledgerline bulk` on the same files,
//! every file's outcome is stored once, and no task is left behind.
//!
//! Without `redis-server` the test says so loudly, and fails under
//! CI=true (`.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{comparable, temp_dir, Moto, Redis, Server, Worker};
use ledgerline_api::{FileState, JobState, JobStatus};
use ledgerline_client::Client;

/// The 60 inputs: six generated workbooks of 20,000 rows (different seeds,
/// some deliberate errors; xlsx, so that the job lasts long enough to be
/// interrupted), ten copies of each under different names (so the report
/// has cross-file duplicates too).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for seed in 1..=6 {
        let out = dir.join(format!("gen-{seed}"));
        let status = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
            .args(["gen", "--rows", "20000", "--format", "xlsx", "--seed"])
            .arg(seed.to_string())
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(status.status.success(), "{status:?}");
        let made = out.join("invoices-20000-rows.xlsx");
        for copy in 0..10 {
            let to = dir.join(format!("s{seed}-c{copy}.xlsx"));
            std::fs::copy(&made, &to).unwrap();
            files.push(to);
        }
    }
    files.sort();
    files
}

/// Makes the inputs in `dir/input`, uploads the first `n` and starts one
/// job over them: the paths and the job's id.
fn start_job(client: &Client, dir: &Path, n: usize) -> (Vec<PathBuf>, String) {
    let input = dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut paths = inputs(&input);
    paths.truncate(n);
    let ids: Vec<String> = paths
        .iter()
        .map(|p| client.upload_file(p).unwrap().id)
        .collect();
    let job = client.bulk(&ids, true, &BTreeMap::new()).unwrap().job_id;
    (paths, job)
}

/// A plain connection to the test's Redis.
fn connect(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// An API-only server on Redis `url` with a `file:///` store in `dir`, and
/// the arguments that start a one-slot worker beside it.
fn api_only(url: &str, dir: &Path) -> (Server, Vec<String>) {
    let files_url = format!("file://{}", dir.join("files").display());
    let server = Server::fresh(&["--store", url, "--files", &files_url, "--no-work"]);
    let spool = dir.join("spool").display().to_string();
    let worker = ["--store", url, "--files", &files_url, "--spool-dir", &spool]
        .into_iter()
        .chain(["--concurrency", "1"])
        .map(String::from)
        .collect();
    (server, worker)
}

fn start_worker(args: &[String]) -> Worker {
    Worker::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Tasks each consumer holds unacknowledged, from `XPENDING`.
fn pending(redis: &mut redis::Connection, prefix: &str) -> BTreeMap<String, u64> {
    let reply: redis::Value = redis::cmd("XPENDING")
        .arg(format!("{prefix}:tasks"))
        .arg("workers")
        .query(redis)
        .unwrap();
    let mut held = BTreeMap::new();
    if let redis::Value::Array(parts) = reply {
        if let Some(redis::Value::Array(consumers)) = parts.get(3) {
            for c in consumers {
                let (name, n): (String, String) = redis::from_redis_value(c.clone()).unwrap();
                held.insert(name, n.parse().unwrap());
            }
        }
    }
    held
}

/// `ledgerline bulk --json` over `paths`, on this machine.
fn bulk_locally(paths: &[PathBuf]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
        .arg("bulk")
        .args(paths)
        .arg("--json")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn status(client: &Client, job: &str) -> JobStatus {
    client.job(job).unwrap()
}

fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn workers_that_die_and_a_redis_that_goes_away_lose_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = temp_dir("many");
    let aof = dir.join("redis");
    std::fs::create_dir_all(&aof).unwrap();
    let Some(mut redis) = Redis::start_aof(port, &aof) else {
        return;
    };
    let url = redis.url();
    let files_url = format!("file://{}", dir.join("files").display());
    let prefix = "fault";
    let server = Server::fresh(&[
        "--store",
        &url,
        "--store-prefix",
        prefix,
        "--files",
        &files_url,
        "--no-work",
    ]);
    let worker = |i: usize| {
        let spool = dir.join(format!("spool-{i}"));
        Worker::start(&[
            "--store",
            &url,
            "--store-prefix",
            prefix,
            "--files",
            &files_url,
            "--spool-dir",
            spool.to_str().unwrap(),
            "--concurrency",
            "2",
            "--claim-after",
            "3",
        ])
    };
    let mut workers: Vec<Worker> = (0..3).map(worker).collect();

    let client = server.client();
    let (paths, job) = start_job(&client, &dir, 60);

    // A worker dies while it holds tasks.
    let mut conn = connect(&url);
    let victim = workers[0].name.clone();
    wait_until(
        "the first worker to hold a task",
        Duration::from_secs(60),
        || {
            pending(&mut conn, prefix)
                .get(&victim)
                .copied()
                .unwrap_or(0)
                > 0
        },
    );
    workers[0].kill9();
    let at_kill = status(&client, &job);
    assert_eq!(at_kill.state, JobState::Running, "the job ended too soon");

    // Redis restarts (SIGTERM, then again on the same port and files).
    wait_until("more files to end", Duration::from_secs(60), || {
        status(&client, &job).progress.files_done >= at_kill.progress.files_done + 3
    });
    redis.stop();
    let mut redis = Redis::start_aof(port, &aof).unwrap();
    let after_restart = status(&client, &job);
    assert!(
        after_restart.progress.files_done >= at_kill.progress.files_done,
        "progress lost in the restart"
    );
    assert_ne!(after_restart.state, JobState::Queued);

    // Redis goes away for 10 s: health says 503, the workers wait.
    wait_until(
        "more files after the restart",
        Duration::from_secs(60),
        || status(&client, &job).progress.files_done >= after_restart.progress.files_done + 3,
    );
    let before_outage = status(&client, &job);
    assert_ne!(
        before_outage.state,
        JobState::Succeeded,
        "the job ended before the outage"
    );
    redis.stop();
    let outage = Instant::now();
    let e = client.health().unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    std::thread::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed()));
    let _redis = Redis::start_aof(port, &aof).unwrap();
    wait_until("health to recover", Duration::from_secs(20), || {
        client.health().is_ok()
    });

    // The job ends, as on one machine.
    wait_until("the job to end", Duration::from_secs(180), || {
        status(&client, &job).state.is_finished()
    });
    let done = status(&client, &job);
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert_eq!(done.progress.files_done, 60);
    assert!(done.files.iter().all(|f| f.state == FileState::Done));
    let report = client.report_json(&job).unwrap();
    let local = bulk_locally(&paths);
    assert_eq!(comparable(report.clone()), comparable(local));
    assert!(
        !report["duplicate_invoices"].as_array().unwrap().is_empty(),
        "copies of one file should show cross-file duplicates"
    );

    // Each file's outcome stored once; nothing left in the queue.
    let kept: Vec<String> = std::fs::read_dir(dir.join("files/jobs").join(&job))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(kept.len(), 60 * 2 + 1, "{kept:?}");
    for i in 0..60 {
        for name in [format!("{i}.json"), format!("{i}.ids.json")] {
            assert_eq!(kept.iter().filter(|k| **k == name).count(), 1, "{name}");
        }
    }
    let mut conn = connect(&url);
    let held: u64 = pending(&mut conn, prefix).values().sum();
    assert_eq!(held, 0, "tasks left unacknowledged");
    let left: u64 = redis::cmd("XLEN")
        .arg(format!("{prefix}:tasks"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(left, 0, "tasks left in the stream");
    drop(workers);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--files s3://…`: uploads and reports in S3-compatible storage; workers
/// stream each upload to a spool file, process it, and remove the copy.
/// The report equals `ledgerline bulk` on the same files.
#[test]
fn an_s3_file_store_serves_workers_on_other_machines() {
    let Some(redis) = Redis::start() else { return };
    let Some(moto) = Moto::start("ledgerline") else {
        return;
    };
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = redis.url();
    let files_url = "s3://ledgerline/deploy";
    let dir = temp_dir("s3");
    let data = dir.join("api");
    let server = Server::start_env(
        &data,
        &["--store", &url, "--files", files_url, "--no-work"],
        &env,
    );
    let spools: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("spool-{i}"))).collect();
    let _workers: Vec<Worker> = spools
        .iter()
        .map(|spool| {
            Worker::start_env(
                &[
                    "--store",
                    &url,
                    "--files",
                    files_url,
                    "--spool-dir",
                    spool.to_str().unwrap(),
                ],
                &env,
            )
        })
        .collect();
    let input = dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut paths = Vec::new();
    for name in [
        "invoices_1k.csv",
        "invoices_10k.csv",
        "excel/basic.xlsx",
        "csv/blank_rows.csv",
    ] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures")
            .join(name);
        let to = input.join(from.file_name().unwrap());
        std::fs::copy(&from, &to).unwrap();
        paths.push(to);
    }
    paths.sort();
    let client = server.client();
    let ids: Vec<String> = paths
        .iter()
        .map(|p| client.upload_file(p).unwrap().id)
        .collect();
    // Nothing of the uploads stays on the API node.
    let leftovers = std::fs::read_dir(data.join("uploads")).unwrap().count();
    assert_eq!(leftovers, 0, "uploads kept on the API node");
    let job = client.bulk(&ids, true, &BTreeMap::new()).unwrap().job_id;
    let last = client.watch(&job, |_| {}).unwrap();
    assert_eq!(last.state, JobState::Succeeded, "{:?}", last.error);
    let report = client.report_json(&job).unwrap();
    let local = bulk_locally(&paths);
    assert_eq!(comparable(report), comparable(local));
    // The workers spooled the uploads (S3 is no local directory), and the
    // copies are gone.
    assert!(
        spools.iter().any(|s| s.join("spool").is_dir()),
        "no worker spooled a file"
    );
    for spool in &spools {
        let left: Vec<_> = std::fs::read_dir(spool.join("spool"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "spool files left: {left:?}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A worker that cannot work says why and exits 2, before touching Redis.
#[test]
fn a_worker_without_what_it_needs_exits_2() {
    let dir = temp_dir("bad-worker");
    let spool = dir.join("spool");
    let files = format!("file://{}", dir.join("files").display());
    let cases: [(&[&str], &str); 4] = [
        (&["--store", "redis://127.0.0.1:1/"], "--files is required"),
        (&["--files", &files], "needs --store redis://"),
        (
            &["--store", "memcached://x", "--files", &files],
            "needs --store redis://",
        ),
        (
            &["--store", "redis://127.0.0.1:1/", "--files", "s4://bucket"],
            "unsupported file store",
        ),
    ];
    for (args, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
            .arg("worker")
            .args(args)
            .arg("--spool-dir")
            .arg(&spool)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM: a worker stops taking tasks, finishes or gives back what it
/// holds, and exits 0; another worker then ends the job.
#[test]
fn a_stopped_worker_holds_nothing() {
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let dir = temp_dir("sigterm-worker");
    let (server, args) = api_only(&url, &dir);
    let mut first = start_worker(&args);
    let client = server.client();
    let (_, job) = start_job(&client, &dir, 12);
    let mut conn = connect(&url);
    let name = first.name.clone();
    wait_until("the worker to hold a task", Duration::from_secs(60), || {
        pending(&mut conn, "ledgerline")
            .get(&name)
            .copied()
            .unwrap_or(0)
            > 0
    });
    let stopping = Instant::now();
    let pid = first.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exit = first.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "the stop took {:?}",
        stopping.elapsed()
    );
    assert_eq!(
        pending(&mut conn, "ledgerline")
            .get(&name)
            .copied()
            .unwrap_or(0),
        0,
        "a stopped worker still holds tasks"
    );
    let running = status_files(&client, &job, FileState::Running);
    assert_eq!(running, 0, "files left running by a stopped worker");
    let _second = start_worker(&args);
    wait_until("the job to end", Duration::from_secs(120), || {
        status(&client, &job).state.is_finished()
    });
    let done = status(&client, &job);
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert_eq!(done.progress.files_done, 12);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn status_files(client: &Client, job: &str, state: FileState) -> usize {
    status(client, job)
        .files
        .iter()
        .filter(|f| f.state == state)
        .count()
}

/// A cancel reaches files running on a worker and files still queued; the
/// job ends `cancelled` with the finished files' reports kept.
#[test]
fn a_cancel_reaches_the_workers() {
    let Some(redis) = Redis::start() else { return };
    let url = redis.url();
    let dir = temp_dir("cancel-workers");
    let (server, args) = api_only(&url, &dir);
    let _worker = start_worker(&args);
    let client = server.client();
    let (_, job) = start_job(&client, &dir, 12);
    wait_until("a first file to end", Duration::from_secs(60), || {
        status(&client, &job).progress.files_done >= 1
    });
    client.cancel(&job).unwrap();
    wait_until("the job to end", Duration::from_secs(60), || {
        status(&client, &job).state.is_finished()
    });
    let last = status(&client, &job);
    assert_eq!(last.state, JobState::Cancelled);
    let (done, cancelled) = common::done_and_cancelled(&client.report(&job).unwrap());
    assert!((1..12).contains(&done), "{done} done");
    assert_eq!(done + cancelled, 12);
    assert_eq!(status_files(&client, &job, FileState::Done), done);
    assert_eq!(status_files(&client, &job, FileState::Cancelled), cancelled);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
