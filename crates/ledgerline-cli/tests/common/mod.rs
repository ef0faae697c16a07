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
