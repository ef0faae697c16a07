//! `cargo xtask examples`: runs every program of `examples/` on small
//! inputs and checks its exit status (CI runs this). `api_client` gets a
//! server of its own on loopback.

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::bench::{start_server, target_dir, workspace_root};

/// Arguments of `cargo xtask examples`.
#[derive(clap::Args)]
pub struct ExamplesArgs {
    /// Build and run the examples in release mode.
    #[arg(long)]
    release: bool,
}

pub fn run(args: &ExamplesArgs) -> Result<()> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = if args.release { "release" } else { "debug" };
    let build = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "build",
            "--examples",
            "-p",
            "ledgerline",
            "-p",
            "ledgerline-cli",
        ])
        .args(args.release.then_some("--release"))
        .status()
        .context("cannot run cargo build")?;
    if !build.success() {
        bail!("cargo build --examples failed");
    }
    let bin = target_dir().join(profile).join("ledgerline");
    let data = target_dir().join("examples-server");
    let _ = std::fs::remove_dir_all(&data);
    let (mut server, url) = start_server(&bin, &data, &[])?;
    let runs: Vec<(&str, Vec<String>, i32)> = vec![
        (
            "process_file",
            vec!["fixtures/csv/basic_valid.csv".into()],
            0,
        ),
        ("process_file", vec!["fixtures/invoices_10k.csv".into()], 1),
        ("process_file", vec!["fixtures/no-such-file.csv".into()], 2),
        (
            "swap_processors",
            vec!["fixtures/invoices_10k.csv".into()],
            0,
        ),
        (
            "custom_progress",
            vec!["fixtures/invoices_10k.csv".into()],
            0,
        ),
        ("bulk_with_progress", vec!["fixtures/csv".into()], 0),
        ("verify", vec!["small".into(), "medium".into()], 0),
        (
            "api_client",
            vec![url.clone(), "fixtures/invoices_10k.csv".into()],
            0,
        ),
    ];
    let mut failed = Vec::new();
    for (name, example_args, expected) in &runs {
        let exe = target_dir().join(profile).join("examples").join(name);
        let out = Command::new(&exe)
            .current_dir(&root)
            .args(example_args)
            .output()
            .with_context(|| format!("cannot run {}", exe.display()))?;
        let code = out.status.code().unwrap_or(-1);
        let ok = code == *expected;
        println!(
            "{} {name} {}: exit {code} (expected {expected})",
            if ok { "ok  " } else { "FAIL" },
            example_args.join(" ")
        );
        if !ok {
            println!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            failed.push(*name);
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    if !failed.is_empty() {
        bail!("examples failed: {failed:?}");
    }
    Ok(())
}
