//! `cargo xtask api-fuzz`: schemathesis against a live `ledgerline serve`
//! on loopback, from the server's own `/v1/openapi.json`: every check but
//! the two `schemathesis.toml` turns off (and says why), the coverage,
//! fuzzing and stateful phases. Fails on any failure or server error.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::bench::{ledgerline_bin, start_server, target_dir, workspace_root};

/// Arguments of `cargo xtask api-fuzz`.
#[derive(clap::Args)]
pub struct ApiFuzzArgs {
    /// Examples per operation and phase (CI: small).
    #[arg(long, default_value_t = 100)]
    max_examples: u32,
    /// Use this binary instead of building the release CLI.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p ledgerline-cli` first.
    #[arg(long)]
    no_build: bool,
    /// Seed for a reproducible run.
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(args: &ApiFuzzArgs) -> Result<()> {
    if Command::new("st").arg("--version").output().is_err() {
        bail!("schemathesis is not installed: pip install schemathesis");
    }
    let bin = ledgerline_bin(args.bin.as_deref(), args.no_build)?;
    let data = target_dir().join("api-fuzz");
    let _ = std::fs::remove_dir_all(&data);
    let (mut server, url) = start_server(&bin, &data, &["--rate-limit", "0"])?;
    let mut st = Command::new("st");
    st.current_dir(workspace_root())
        .args(["--config-file", "schemathesis.toml", "run"])
        .arg(format!("{url}/v1/openapi.json"))
        // One worker: with two, CPython 3.11's `ast` fails now and then
        // inside hypothesis ("AST constructor recursion depth mismatch"), an
        // error of the tester that says nothing about the server.
        .args([
            "--max-examples",
            &args.max_examples.to_string(),
            "--workers",
            "1",
        ]);
    if let Some(seed) = args.seed {
        st.args(["--seed", &seed.to_string()]);
    }
    let status = st.status().context("cannot run schemathesis");
    let alive = server.try_wait()?.is_none();
    let _ = server.kill();
    let _ = server.wait();
    let status = status?;
    if !alive {
        bail!("the server died during the run");
    }
    if !status.success() {
        bail!("schemathesis found problems ({status})");
    }
    Ok(())
}
