//! `ledgerline client interactive` tried as a person would: in a real
//! terminal (tmux), keys sent with send-keys, the screen captured and
//! checked. Needs tmux; without it the test says so loudly, and fails
//! under CI=true (`.ci/run` installs tmux).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

struct ServerChild(Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the pane shows `text`; returns the screen.
fn wait_screen(session: &str, text: &str) -> String {
    let started = Instant::now();
    loop {
        let screen = tmux(&["capture-pane", "-p", "-t", session, "-S", "-200"]);
        if screen.contains(text) {
            return screen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never saw {text:?}; screen:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn keys(session: &str, keys: &[&str]) {
    let mut args = vec!["send-keys", "-t", session];
    args.extend_from_slice(keys);
    tmux(&args);
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn interactive_session_in_a_real_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("NOTICE: check skipped: tmux is not installed");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is required under CI=true"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data: PathBuf =
        std::env::temp_dir().join(format!("ledgerline-tmux-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let bin = env!("CARGO_BIN_EXE_ledgerline");
    let mut server = Command::new(bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("LEDGERLINE_API_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = ServerChild(server);
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();

    let name = format!("ledgerline-{}", std::process::id());
    let session = Session(name.clone());
    let command = format!("{bin} client --url {url} interactive; echo CLIENT-EXIT=$?; sleep 30");
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "160",
        "-y",
        "50",
        &command,
    ]);
    wait_screen(&name, "What next?");

    // Health check (the first item).
    keys(&name, &["Enter"]);
    let screen = wait_screen(&name, "embedded store");
    assert!(screen.contains(&format!("server {url}: ok")), "{screen}");

    // Upload two files.
    wait_screen(&name, "(0 files uploaded)");
    keys(&name, &["Down", "Enter"]);
    wait_screen(&name, "Files or folders");
    let files = format!(
        "{} {}",
        root.join("fixtures/csv/basic_valid.csv").display(),
        root.join("fixtures/invoices_10k.csv").display()
    );
    keys(&name, &["-l", &files]);
    keys(&name, &["Enter"]);
    let screen = wait_screen(&name, "(2 files uploaded)");
    assert!(
        screen.contains("basic_valid.csv") && screen.contains("invoices_10k.csv"),
        "{screen}"
    );

    // Compare both processors side by side: both times, the speedup, the verdict.
    keys(&name, &["Down", "Down", "Down", "Down", "Enter"]);
    let screen = wait_screen(&name, "reports    identical");
    assert!(
        screen.contains("standard") && screen.contains("optimized"),
        "{screen}"
    );
    assert!(screen.contains("speedup"), "{screen}");

    // Bulk with the standard processor: a progress bar, then the summary.
    keys(&name, &["Down", "Down", "Down", "Enter"]);
    let screen = wait_screen(&name, "with invalid rows 1");
    assert!(screen.contains("files 2"), "{screen}");
    // The whole session, for whoever reads the test's output.
    eprintln!("{screen}");

    // Quit.
    keys(&name, &["Up", "Enter"]);
    let screen = wait_screen(&name, "CLIENT-EXIT=");
    assert!(screen.contains("CLIENT-EXIT=0"), "{screen}");
    drop(session);
    let _ = std::fs::remove_dir_all(&data);
}
