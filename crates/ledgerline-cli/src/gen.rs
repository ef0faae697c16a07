//! `ledgerline gen`: deterministic invoice files for trying ledgerline out
//! (the `ledgerline-gen` crate does the work).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use ledgerline_gen::Preset;

#[derive(Debug, Args)]
pub(crate) struct GenArgs {
    /// small (100 rows), medium (1,000), large (10,000) or xlarge (50,000).
    #[arg(long, value_name = "NAME", conflicts_with = "rows")]
    preset: Option<String>,
    /// Any number of data rows instead of a preset.
    #[arg(long, value_name = "N")]
    rows: Option<u64>,
    /// csv, xlsx or both.
    #[arg(long, default_value = "csv", value_name = "FORMAT")]
    format: String,
    /// Share of rows carrying one deliberate error, from 0 to 1.
    #[arg(long, default_value_t = 0.02, value_name = "RATE")]
    errors: f64,
    /// Seed: the same seed and size give the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Folder to write into (created if missing).
    #[arg(long, default_value = ".", value_name = "DIR")]
    out: PathBuf,
}

pub(crate) fn run(args: GenArgs) -> i32 {
    match generate(&args) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            0
        }
        Err(e) => {
            eprintln!("ledgerline gen: {e}");
            2
        }
    }
}

fn generate(args: &GenArgs) -> Result<Vec<PathBuf>, String> {
    let (rows, name) = match (&args.preset, args.rows) {
        (Some(p), None) => {
            let preset = Preset::parse(p).ok_or_else(|| {
                format!("--preset: expected small, medium, large or xlarge, got {p:?}")
            })?;
            (preset.rows(), preset.name().to_string())
        }
        (None, Some(n)) => (n, format!("{n}-rows")),
        (None, None) => (Preset::Small.rows(), Preset::Small.name().to_string()),
        (Some(_), Some(_)) => return Err("--preset and --rows: give one".into()),
    };
    let (csv, xlsx) = match args.format.as_str() {
        "csv" => (true, false),
        "xlsx" => (false, true),
        "both" => (true, true),
        other => {
            return Err(format!(
                "--format: expected csv, xlsx or both, got {other:?}"
            ))
        }
    };
    if !(0.0..=1.0).contains(&args.errors) {
        return Err(format!(
            "--errors: expected a rate from 0 to 1, got {}",
            args.errors
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let base = args.out.join(format!("invoices-{name}"));
    let csv_path = base.with_extension("csv");
    // The workbook is made from the CSV; without --format csv it is a
    // temporary file, removed afterwards.
    let csv_target = if csv {
        csv_path.clone()
    } else {
        args.out.join(format!(".invoices-{name}.csv.tmp"))
    };
    let summary = write_csv(&csv_target, rows, args.seed, args.errors)?;
    let mut written = Vec::new();
    if csv {
        written.push(csv_path);
    }
    if xlsx {
        let xlsx_path = base.with_extension("xlsx");
        let input =
            File::open(&csv_target).map_err(|e| format!("{}: {e}", csv_target.display()))?;
        let result = ledgerline_gen::xlsx::write_xlsx(BufReader::new(input), &xlsx_path);
        if !csv {
            let _ = std::fs::remove_file(&csv_target);
        }
        result.map_err(|e| e.to_string())?;
        written.push(xlsx_path);
    }
    eprintln!(
        "{} rows ({} invoices, {} rows with a deliberate error), seed {}",
        summary.rows,
        summary.invoices,
        summary.error_rows(),
        args.seed
    );
    Ok(written)
}

fn write_csv(
    path: &Path,
    rows: u64,
    seed: u64,
    rate: f64,
) -> Result<ledgerline_gen::Summary, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).map_err(err)?);
    let summary = ledgerline_gen::generate_counted(rows, seed, rate, &mut out).map_err(err)?;
    out.flush().map_err(err)?;
    Ok(summary)
}
