//! `ledgerline client interactive` tried as a person would: in a real
//! terminal (tmux), keys sent with send-keys, the screen captured and
//! checked. Needs tmux; without it the test says so loudly, and fails
//! under CI=true (`.ci/run` installs tmux).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
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
    let server = common::Server::fresh(&[]);
    let url = server.url.clone();
    let bin = env!("CARGO_BIN_EXE_ledgerline");

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
}
