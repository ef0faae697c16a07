//! Criterion benches of whole-file processing: the standard processor and the
//! optimized one at each level, on seeded generated invoice files.
//!
//! IDs are `{format}/{rows}/{processor}`, e.g. `csv/10000/optimized-l2`, so
//! `cargo bench -- csv/10000` picks one size and `cargo bench -- standard`
//! one processor. Throughput is the file's size in bytes.
//!
//! Data is written once into `target/bench-data/` by `xtask::gen` (the code
//! behind `cargo xtask gen`) and reused while its size still matches what the
//! generator would write; it is never committed. Every iteration checks the
//! report's row counts and error counts against what the generator says it
//! injected, so a fast wrong answer fails the bench instead of winning it.
//!
//! The default run is sized for a 2-core machine: fewer samples and flat
//! sampling for the large files, so `cargo bench` finishes in a few minutes.

use std::collections::BTreeMap;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{FileError, FileProcessor, Report, Settings};
use ledgerline::optimized::OptimizedProcessor;
use xtask::gen;

/// CSV sizes of the issue: 100, 1K, 10K, 50K and 1M data rows.
const CSV_ROWS: [u64; 5] = [100, 1_000, 10_000, 50_000, 1_000_000];

/// Excel sizes of the issue: 1K, 10K and 50K data rows (see [`xlsx_benches`]).
const XLSX_ROWS: [u64; 3] = [1_000, 10_000, 50_000];

/// One seed for every bench, so numbers from different runs see the same bytes.
const SEED: u64 = 42;

/// The generator's default share of rows with an injected error (2%), as in
/// the peers' `gen_bench.py`.
const ERROR_RATE: f64 = 0.02;

/// What a correct report must say about a generated file.
struct Expected {
    total: u64,
    invalid: u64,
    /// Rows per error code; every injected error is reported once under
    /// exactly the code the generator names.
    error_counts: BTreeMap<String, u64>,
}

/// A generated file ready to bench.
struct Dataset {
    path: PathBuf,
    bytes: u64,
    expected: Expected,
}

/// `target/bench-data/`, honouring `CARGO_TARGET_DIR`.
fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench-data")
}

/// The CSV of `rows` rows, generated unless a file of the right size is
/// already there. The file name matches `cargo xtask bench`, which shares it.
fn csv_dataset(rows: u64) -> Result<Dataset, Box<dyn Error>> {
    let gen::Cached {
        path,
        bytes,
        summary,
    } = gen::cached(&data_dir(), rows, SEED, ERROR_RATE)?;
    let error_counts = gen::ErrorKind::ALL
        .iter()
        .map(|&k| (k.code().to_string(), summary.count(k)))
        .filter(|&(_, n)| n > 0)
        .collect();
    Ok(Dataset {
        path,
        bytes,
        expected: Expected {
            total: rows,
            invalid: summary.error_rows(),
            error_counts,
        },
    })
}

/// Why `result` is not the report `expected` describes, if it is not.
fn check(result: &Result<Report, FileError>, expected: &Expected) -> Result<(), String> {
    let report = result
        .as_ref()
        .map_err(|e| format!("file error {:?}: {}", e.code, e.message))?;
    let rows = &report.rows;
    let want = (
        expected.total,
        expected.total - expected.invalid,
        expected.invalid,
        0,
    );
    let got = (rows.total, rows.valid, rows.invalid, rows.blank);
    if got != want {
        return Err(format!(
            "rows (total, valid, invalid, blank) = {got:?}, expected {want:?}"
        ));
    }
    let counts: BTreeMap<String, u64> = report
        .error_counts
        .iter()
        .map(|(code, &n)| (code.as_str().to_string(), n))
        .collect();
    if counts != expected.error_counts {
        return Err(format!(
            "error_counts = {counts:?}, expected {:?}",
            expected.error_counts
        ));
    }
    Ok(())
}

/// The processors under test with their bench names.
fn processors() -> Vec<(&'static str, Box<dyn FileProcessor>)> {
    let level = |n: u8| {
        let mut settings = Settings::default();
        settings.optimization_level = n;
        Box::new(OptimizedProcessor::new(settings)) as Box<dyn FileProcessor>
    };
    vec![
        (
            "standard",
            Box::new(StandardProcessor::new(Settings::default())) as Box<dyn FileProcessor>,
        ),
        ("optimized-l1", level(1)),
        ("optimized-l2", level(2)),
        ("optimized-l3", level(3)),
    ]
}

/// Scales sampling to the file so the default run stays sane on 2 cores:
/// criterion's defaults (100 samples, 5 s) would take minutes per processor
/// at a million rows.
fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, rows: u64) {
    if rows >= 1_000_000 {
        // One iteration takes around a second: ten flat samples.
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(15));
    } else if rows >= 50_000 {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
    } else {
        group
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
    }
}

/// Benches every processor on `data`, under the group `{format}/{rows}`.
fn bench_dataset(c: &mut Criterion, format: &str, rows: u64, data: &Dataset) {
    let mut group = c.benchmark_group(format!("{format}/{rows}"));
    configure(&mut group, rows);
    group.throughput(Throughput::Bytes(data.bytes));
    for (name, processor) in processors() {
        group.bench_function(name, |b| {
            b.iter(|| {
                let result = processor.process_file(&data.path);
                // The check runs inside the timed loop on purpose: it is a
                // few comparisons, and it makes every iteration prove itself.
                assert_eq!(
                    check(&result, &data.expected),
                    Ok(()),
                    "{name} on {format}/{rows}"
                );
                result
            })
        });
    }
    group.finish();
}

/// CSV at every size of [`CSV_ROWS`].
fn csv_benches(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    for rows in CSV_ROWS {
        let data = csv_dataset(rows)?;
        bench_dataset(c, "csv", rows, &data);
    }
    Ok(())
}

/// The workbook of the same invoices as the CSV of `rows` rows (written
/// beside it by xtask's xlsx writer when missing), with the counts the
/// standard processor reports for it.
///
/// The expected counts come from the standard processor here, not from the
/// generator: a ragged CSV record is an ordinary sheet row, which may be
/// valid or carry another error. They are sanity-checked against the
/// generator first, and every processor must then match them exactly.
fn xlsx_dataset(rows: u64) -> Result<Option<Dataset>, Box<dyn Error>> {
    let csv = csv_dataset(rows)?;
    let path = csv.path.with_extension("xlsx");
    if fs::metadata(&path).is_err() {
        // Written once from the CSV by xtask's xlsx writer, via a temporary
        // name so an interrupted run leaves no half workbook.
        let tmp = path.with_extension("xlsx.tmp");
        let input = fs::File::open(&csv.path)?;
        xtask::xlsx::write_xlsx(std::io::BufReader::new(input), &tmp)?;
        fs::rename(&tmp, &path)?;
    }
    let Ok(meta) = fs::metadata(&path) else {
        return Ok(None);
    };
    let standard = StandardProcessor::new(Settings::default());
    let report = standard.process_file(&path)?;
    let ragged = csv
        .expected
        .error_counts
        .get("ragged_row")
        .copied()
        .unwrap_or(0);
    let injected = csv.expected.invalid;
    let r = &report.rows;
    if r.total != rows || r.blank != 0 || r.invalid > injected || r.invalid + ragged < injected {
        return Err(format!(
            "{}: standard report rows {:?} do not fit {rows} rows with {injected} injected errors",
            path.display(),
            (r.total, r.valid, r.invalid, r.blank)
        )
        .into());
    }
    let error_counts = report
        .error_counts
        .iter()
        .map(|(code, &n)| (code.as_str().to_string(), n))
        .collect();
    Ok(Some(Dataset {
        path,
        bytes: meta.len(),
        expected: Expected {
            total: rows,
            invalid: r.invalid,
            error_counts,
        },
    }))
}

/// Excel (xlsx) at every size of [`XLSX_ROWS`].
///
/// The workbooks are written by xtask's xlsx writer, which lives in the
/// xtask binary rather than its library, so this bench cannot call it:
/// `cargo xtask bench --formats xlsx --sizes 1000,10000,50000 --runs 1`
/// writes them into `target/bench-data/`, and a size without its workbook is
/// skipped with a note on stderr.
fn xlsx_benches(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    for rows in XLSX_ROWS {
        match xlsx_dataset(rows)? {
            Some(data) => bench_dataset(c, "xlsx", rows, &data),
            None => eprintln!(
                "xlsx/{rows}: skipped, no workbook; run `cargo xtask bench --formats xlsx \
                 --sizes {rows} --runs 1` to write it"
            ),
        }
    }
    Ok(())
}

/// Like `criterion_main!`, but data generation can fail with a message
/// instead of a panic.
fn main() -> Result<(), Box<dyn Error>> {
    let mut c = Criterion::default().configure_from_args();
    csv_benches(&mut c)?;
    xlsx_benches(&mut c)?;
    c.final_summary();
    Ok(())
}
