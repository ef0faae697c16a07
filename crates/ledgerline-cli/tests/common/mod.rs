//! What the service tests share: a `ledgerline serve` child process on an
//! ephemeral 127.0.0.1 port, killed (and its data directory removed) when
//! dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A server child process.
pub struct Server {
    pub child: Child,
    pub url: String,
    /// `host:port`.
    pub addr: String,
    pub data: PathBuf,
    /// Remove `data` when dropped.
    pub owns_data: bool,
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ledgerline-serve-{}-{name}-{}",
        std::process::id(),
        ledgerline_store::new_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Server {
    /// Starts a server on `data` with `args` and `env` added.
    pub fn start_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledgerline"));
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(args)
            .env_remove("LEDGERLINE_API_TOKEN")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("server said {line:?}"))
            .to_string();
        Server {
            child,
            addr: url.trim_start_matches("http://").to_string(),
            url,
            data: data.to_path_buf(),
            owns_data: false,
        }
    }

    /// Starts a server on `data` with `args` added.
    pub fn start(data: &Path, args: &[&str]) -> Server {
        Server::start_env(data, args, &[])
    }

    /// Starts a server on a fresh data directory it removes when dropped.
    pub fn fresh(args: &[&str]) -> Server {
        let mut server = Server::start(&temp_dir("data"), args);
        server.owns_data = true;
        server
    }

    /// A client of it (no token).
    pub fn client(&self) -> ledgerline_client::Client {
        ledgerline_client::Client::new(&self.url, None).unwrap()
    }

    /// Kills the server at once (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_data {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

/// A private `redis-server` on a free 127.0.0.1 port, nothing on disk;
/// killed when dropped.
pub struct Redis {
    pub child: Child,
    pub port: u16,
}

impl Redis {
    /// Starts one, or says loudly why it cannot (and fails under CI=true).
    pub fn start() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis::start_on(port)
    }

    /// Starts one on `port`.
    pub fn start_on(port: u16) -> Option<Redis> {
        Redis::start_with(port, &["--appendonly", "no"])
    }

    /// Starts one on `port` that keeps every write in an append-only file
    /// in `dir` (fsync on each write), so a restart loses nothing.
    pub fn start_aof(port: u16, dir: &Path) -> Option<Redis> {
        let dir = dir.to_str().unwrap();
        Redis::start_with(
            port,
            &[
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                dir,
            ],
        )
    }

    fn start_with(port: u16, extra: &[&str]) -> Option<Redis> {
        let child = match Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                let why = format!("redis-server cannot be started ({e})");
                assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
                eprintln!("NOTICE: check skipped: {why}");
                return None;
            }
        };
        let redis = Redis { child, port };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(redis)
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops it as an operator would (SIGTERM: it writes what it holds).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Stops it at once.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `ledgerline worker` child process, killed when dropped.
pub struct Worker {
    pub child: Child,
    /// Its consumer name in the task stream.
    pub name: String,
}

impl Worker {
    /// Starts a worker with `args` added; returns once it has started.
    pub fn start(args: &[&str]) -> Worker {
        Worker::start_env(args, &[])
    }

    /// Starts a worker with `args` and `env` added.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledgerline"))
            .arg("worker")
            .args(args)
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let name = line
            .trim()
            .strip_prefix("worker ")
            .and_then(|l| l.strip_suffix(" started"))
            .unwrap_or_else(|| panic!("worker said {line:?}"))
            .to_string();
        Worker { child, name }
    }

    /// Kills it at once (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bulk report in the form compared: `metrics`, `message`s and
/// `file_id`s removed, each `path` cut to its file name.
pub fn comparable(mut report: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    report.as_object_mut().unwrap().remove("metrics");
    for f in report["files"].as_array_mut().unwrap() {
        let o = f.as_object_mut().unwrap();
        o.remove("file_id");
        let name = Path::new(o["path"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        o.insert("path".into(), Value::String(name));
        ledgerline_core::strip_for_comparison(o.get_mut("report").unwrap());
    }
    for d in report["duplicate_invoices"].as_array_mut().unwrap() {
        for f in d["files"].as_array_mut().unwrap() {
            let name = Path::new(f.as_str().unwrap()).file_name().unwrap();
            *f = Value::String(name.to_string_lossy().to_string());
        }
    }
    report
}

/// A `moto_server` (S3-compatible, in memory) on a free loopback port with
/// one bucket, killed when dropped.
pub struct Moto {
    pub child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts one with `bucket`, or says loudly why it cannot (and fails
    /// under CI=true: `.ci/run` installs `moto[server]`).
    pub fn start(bucket: &str) -> Option<Moto> {
        use std::io::{Read, Write};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                let why = format!("moto_server cannot be started ({e})");
                assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
                eprintln!("NOTICE: check skipped: {why}");
                return None;
            }
        };
        let moto = Moto { child, port };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "moto_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // Moto takes an unsigned request to make the bucket.
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        Some(moto)
    }

    /// The environment that points a process's S3 client at it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A job report's files that gave a report and those cancelled.
pub fn done_and_cancelled(report: &ledgerline_bulk::BulkReport) -> (usize, usize) {
    let done = report.files.iter().filter(|f| f.outcome.is_ok()).count();
    let cancelled = report
        .files
        .iter()
        .filter(|f| matches!(&f.outcome, Err(e) if e.code.as_str() == "cancelled"))
        .count();
    (done, cancelled)
}
