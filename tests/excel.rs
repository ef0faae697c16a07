//! Excel fixtures and the Excel reader on files we did not write.
//!
//! Every workbook under `fixtures/excel/` (conventions as `fixtures/csv/`:
//! `<name>.<ext>` + `<name>.expected.json`, optional `<name>.settings.json`)
//! runs through the standard processor and the optimized one at levels 1, 2
//! and 3 with chunk sizes 1, 2, 7 and 5,000; every report must equal the
//! hand-checked expected one (SPEC §8: parsed JSON without `metrics` and
//! `message`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{comparable_result as comparable, stem};
use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{CellKind, FileError, FileProcessor, RecordBatch, Settings};
use ledgerline::optimized::OptimizedProcessor;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    common::fixture_dir("excel")
}

fn read_json(path: &Path) -> Value {
    common::read_json(path).unwrap_or_else(|e| panic!("{e}"))
}

fn settings_for(fixture: &Path) -> Settings {
    common::fixture_settings(fixture)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{}: {e}", fixture.display()))
}

fn fixtures() -> Vec<PathBuf> {
    common::fixtures_in(&fixture_dir())
}

#[test]
fn excel_fixtures_match_expected_reports_in_every_processor() {
    let dir = fixture_dir();
    let list = fixtures();
    assert!(list.len() >= 10, "fixtures missing in {}", dir.display());
    let mut failures = String::new();
    for path in &list {
        let name = stem(path);
        let expected = read_json(&dir.join(format!("{name}.expected.json")));
        let settings = settings_for(path);
        let mut runs: Vec<(String, Value)> = Vec::new();
        runs.push((
            "standard".into(),
            comparable(StandardProcessor::new(settings.clone()).process_file(path)),
        ));
        for level in [1u8, 2, 3] {
            for chunk in [1usize, 2, 7, 5000] {
                let mut s = settings.clone();
                s.optimization_level = level;
                s.chunk_size = chunk;
                // On the calling thread (these files are small) and on
                // worker threads, forced.
                let here = OptimizedProcessor::new(s.clone());
                let threaded = OptimizedProcessor::new(s).with_sequential_below(0);
                for (how, p) in [("", &here), (" threaded", &threaded)] {
                    let p: &dyn FileProcessor = p;
                    runs.push((
                        format!("optimized L{level} chunk {chunk}{how}"),
                        comparable(p.process_file(path)),
                    ));
                }
            }
        }
        // The in-memory path (process_reader) reads the same workbook.
        let bytes = fs::read(path).unwrap();
        runs.push((
            "standard reader".into(),
            comparable(
                StandardProcessor::new(settings.clone())
                    .process_reader(&name, &mut Cursor::new(bytes)),
            ),
        ));
        for (what, actual) in runs {
            if actual != expected {
                let _ = writeln!(
                    failures,
                    "\n{} ({what}):\n  expected {expected}\n  actual   {actual}",
                    path.display()
                );
            }
        }
    }
    assert!(failures.is_empty(), "reports differ:{failures}");
}

/// Every record of `path` as `ledgerline rows` prints it: the texts, plus
/// each cell's kind.
fn rows_of(path: &Path, settings: &Settings) -> Result<Vec<Vec<(CellKind, String)>>, FileError> {
    let mut reader = ledgerline::read::open_path_padded(path, settings)?;
    let mut batch = RecordBatch::new();
    let mut out = Vec::new();
    let mut expect_row = 1;
    while reader.read_batch(&mut batch, 3)? > 0 {
        for r in batch.iter() {
            assert_eq!(r.row(), expect_row, "sheet rows are numbered 1, 2, …");
            expect_row += 1;
            out.push(
                (0..r.len())
                    .map(|j| {
                        let (kind, bytes) = r.cell(j);
                        (kind, String::from_utf8_lossy(bytes).into_owned())
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

fn texts(rows: &[Vec<(CellKind, String)>]) -> Vec<Vec<&str>> {
    rows.iter()
        .map(|r| r.iter().map(|(_, t)| t.as_str()).collect())
        .collect()
}

#[test]
fn rows_of_a_sheet_are_padded_from_row_one_with_spec_texts() {
    let rows = rows_of(
        &fixture_dir().join("cells_types.xlsx"),
        &Settings::default(),
    )
    .unwrap();
    let t = texts(&rows);
    // Rows 1-2 are blank, the header is row 3, row 6 is blank, row 12 last.
    assert_eq!(t.len(), 12);
    let blank = vec![""; 9];
    assert_eq!(t[0], blank);
    assert_eq!(t[1], blank);
    assert_eq!(t[2][0], "invoice_id");
    assert_eq!(
        t[3],
        [
            "INV-1",
            "2024-01-15",
            "2024-02-14",
            "C1",
            "2",
            "10.5",
            "0.2",
            "25.2",
            "EUR"
        ]
    );
    assert_eq!(
        t[4],
        [
            "INV-2",
            "45306",
            "2024-02-01",
            "C2",
            "3",
            "0.1",
            "0",
            "",
            "USD"
        ]
    );
    assert_eq!(t[5], blank);
    assert_eq!(t[6][4], "#DIV/0!");
    assert_eq!(rows[6][4].0, CellKind::Error);
    assert_eq!(t[7][4], "true");
    assert_eq!(rows[7][4].0, CellKind::Bool);
    assert_eq!(t[9][1], "2024-03-01T13:05:07");
    assert_eq!(rows[9][1].0, CellKind::Date);
    assert_eq!(t[11][0], "123456789012346000");
    assert_eq!(t[11][3], "0.3");
    assert_eq!(t[11][5], "2.675");
    assert_eq!(rows[11][5].0, CellKind::Number);
}

#[test]
fn rows_still_prints_trailing_blank_sheet_rows() {
    // SPEC §10: `process` does not count rows 7-10 (white space and null
    // tokens only, after the last data row), but `rows` prints up to the
    // last row holding any value, padded to column G.
    let rows = rows_of(
        &fixture_dir().join("trailing_blank_rows.xlsx"),
        &Settings::default(),
    )
    .unwrap();
    let t = texts(&rows);
    assert_eq!(t.len(), 10);
    assert_eq!(t[6], ["   ", "", "", "", "", "", " "]);
    assert_eq!(t[7], ["", "NA", "", "", "N/A", "", ""]);
    assert_eq!(t[8], [""; 7]);
    assert_eq!(t[9], ["", "", "", "n/a", "", "\u{a0}NULL ", ""]);
}

#[test]
fn rows_of_xls_and_ods_match_the_xlsx_they_were_converted_from() {
    let dir = fixture_dir();
    let xlsx = texts(&rows_of(&dir.join("basic.xlsx"), &Settings::default()).unwrap())
        .into_iter()
        .map(|r| r.into_iter().map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>();
    assert_eq!(xlsx.len(), 6);
    for other in ["basic_xls.xls", "basic_ods.ods", "basic_vba.xlsm"] {
        let rows = rows_of(&dir.join(other), &Settings::default()).unwrap();
        let t: Vec<Vec<String>> = texts(&rows)
            .into_iter()
            .map(|r| r.into_iter().map(String::from).collect())
            .collect();
        assert_eq!(t, xlsx, "{other}");
    }
}

#[test]
fn zip_bomb_and_sparse_sheet_are_refused_quickly() {
    for name in ["zip_bomb.xlsx", "sparse_dimension.xlsx"] {
        let start = Instant::now();
        let err = rows_of(&fixture_dir().join(name), &Settings::default()).unwrap_err();
        assert_eq!(err.code.as_str(), "unreadable", "{name}");
        assert!(err.message.contains("refused"), "{name}: {}", err.message);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name} took {:?}",
            start.elapsed()
        );
    }
}

/// An xls whose workbook stream claims 4 GB over a sector chain that links
/// to itself: calamine copied that sector up to the claimed length (5 GB
/// resident, 18 s); the guard refuses it before calamine runs.
#[test]
fn fuzz_xls_looping_chain_is_refused_quickly() {
    let start = Instant::now();
    let path = fixture_dir().join("fuzz_xls_looping_chain.xls");
    let err = rows_of(&path, &Settings::default()).unwrap_err();
    assert_eq!(err.code.as_str(), "unreadable");
    assert!(
        err.message.contains("refused") && err.message.contains("memory budget"),
        "{}",
        err.message
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

/// Third-party workbooks (calamine's test suite, `../shared/excel-samples`):
/// each must give rows or a clean file error, never a panic or a hang.
#[test]
fn third_party_samples_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/excel-samples/calamine");
    let Ok(entries) = fs::read_dir(&dir) else {
        common::skip(&format!("{} is absent", dir.display()));
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut read = 0;
    let mut xlsb_rows = 0;
    for path in paths.iter().filter(|p| p.is_file()) {
        let result = std::panic::catch_unwind(|| rows_of(path, &Settings::default()));
        match result {
            Ok(Ok(rows)) => {
                read += 1;
                if path.extension().is_some_and(|e| e == "xlsb") {
                    xlsb_rows += rows.len();
                }
            }
            Ok(Err(e)) => println!("{}: {} {}", path.display(), e.code.as_str(), e.message),
            Err(_) => panic!("{} panicked", path.display()),
        }
        // The standard processor must not panic either.
        let _ = StandardProcessor::new(Settings::default()).process_file(path);
    }
    assert!(read > 0);
    assert!(xlsb_rows > 0, "no xlsb sample read");
}

/// Runs `bytes` (written to a temporary file named `file`) through the
/// standard processor and the optimized one at every level.
fn process_all(file: &str, bytes: &[u8], settings: &Settings) -> Vec<(String, Value)> {
    let dir = std::env::temp_dir().join(format!("ledgerline-hostile-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    fs::write(&path, bytes).unwrap();
    let mut runs = vec![(
        "standard".to_string(),
        comparable(StandardProcessor::new(settings.clone()).process_file(&path)),
    )];
    for level in [1u8, 2, 3] {
        let mut s = settings.clone();
        s.optimization_level = level;
        s.chunk_size = 7;
        runs.push((
            format!("optimized L{level}"),
            comparable(OptimizedProcessor::new(s).process_file(&path)),
        ));
    }
    let _ = fs::remove_file(&path);
    runs
}

fn error_message(file: &str, bytes: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("ledgerline-msg-{}-{file}", std::process::id()));
    fs::write(&path, bytes).unwrap();
    let result = StandardProcessor::new(Settings::default()).process_file(&path);
    let _ = fs::remove_file(&path);
    result.err().map(|e| e.message).unwrap_or_default()
}

/// Every hostile workbook of `xtask::workbooks` gives its expected outcome
/// quickly in every processor: the file error `unreadable` naming the
/// limit, or a report.
#[test]
fn hostile_workbooks_are_refused_naming_the_limit() {
    for case in xtask::workbooks::cases().unwrap() {
        let start = Instant::now();
        for (what, result) in process_all(case.file, &case.bytes, &Settings::default()) {
            match case.expect {
                xtask::workbooks::Expect::Unreadable(_) => assert_eq!(
                    result["error"]["code"], "unreadable",
                    "{} ({what}): {result}",
                    case.file
                ),
                xtask::workbooks::Expect::Report => {
                    assert_eq!(result["rows"]["valid"], 20_000, "{} ({what})", case.file)
                }
            }
        }
        if let xtask::workbooks::Expect::Unreadable(text) = case.expect {
            let message = error_message(case.file, &case.bytes);
            assert!(
                message.contains(text) || debug_overflow(case.file, &message),
                "{}: {message}",
                case.file
            );
        }
        // A guard against hangs only: speed and memory are measured by
        // `cargo xtask hostile-excel` on the release build.
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "{} took {:?}",
            case.file,
            start.elapsed()
        );
    }
}

/// Column `ZZZZZZZ` overflows calamine's 32-bit column arithmetic: a
/// release build wraps (to a column the position check refuses), a test
/// build panics inside calamine, which the reader turns into `unreadable`.
fn debug_overflow(case: &str, message: &str) -> bool {
    cfg!(debug_assertions)
        && case.to_ascii_uppercase().contains("ZZZZZZZ")
        && message.contains("stopped unexpectedly")
}

/// A far cell is refused by `rows` too, before any row is sized from it.
#[test]
fn far_column_is_refused_by_rows() {
    for cell in ["XFE1", "ZZZZZ1", "ZZZZZZZ1"] {
        let bytes = xtask::workbooks::far_cell(cell).unwrap();
        let path =
            std::env::temp_dir().join(format!("ledgerline-far-{}-{cell}.xlsx", std::process::id()));
        fs::write(&path, bytes).unwrap();
        let err = rows_of(&path, &Settings::default()).unwrap_err();
        let _ = fs::remove_file(&path);
        assert_eq!(err.code.as_str(), "unreadable", "{cell}");
        assert!(
            err.message.contains("beyond the sheet's limits") || debug_overflow(cell, &err.message),
            "{cell}: {}",
            err.message
        );
    }
    // XFD, the last column, is still read.
    let bytes = xtask::workbooks::far_cell("XFD1").unwrap();
    let path = std::env::temp_dir().join(format!("ledgerline-far-{}-xfd.xlsx", std::process::id()));
    fs::write(&path, bytes).unwrap();
    let rows = rows_of(&path, &Settings::default()).unwrap();
    let _ = fs::remove_file(&path);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].len(), 16_384);
    assert_eq!(rows[0][16_383].1, "x");
}

/// A shared string referenced by every row is read row after row (batches
/// flushed by bytes, never by what the text expands to), so every row is
/// counted, in every processor.
#[test]
fn huge_shared_string_rows_are_all_counted() {
    let bytes = xtask::workbooks::huge_shared_string(200 << 10, 300).unwrap();
    for (what, result) in process_all("shared.xlsx", &bytes, &Settings::default()) {
        assert_eq!(result["rows"]["total"], 300, "{what}: {result}");
        assert_eq!(result["rows"]["valid"], 300, "{what}");
    }
}

/// A generated workbook over the 4 MiB line, so the optimized processor
/// runs the sheet through its worker threads at every level by default
/// (the reader thread, validation workers, the in-order merge), with many
/// chunks: the same report as the standard processor, which also equals
/// the report of the same invoices as CSV apart from `source`.
#[test]
fn large_workbook_through_the_threaded_pipeline() {
    let mut csv = Vec::new();
    xtask::gen::generate(70_000, 11, 0.02, &mut csv).unwrap();
    let dir = std::env::temp_dir().join(format!("ledgerline-excel-large-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let xlsx = dir.join("large.xlsx");
    xtask::xlsx::write_xlsx(&csv[..], &xlsx).unwrap();
    assert!(
        fs::metadata(&xlsx).unwrap().len() > 4 << 20,
        "over the sequential line"
    );
    let mut s = Settings::default();
    s.apply("chunk_size", "3000").unwrap();
    let expected = comparable(StandardProcessor::new(s.clone()).process_file(&xlsx));
    assert_eq!(expected["rows"]["total"], 70_000);
    for level in [1u8, 2, 3] {
        let mut s = s.clone();
        s.optimization_level = level;
        let report = OptimizedProcessor::new(s).process_file(&xlsx).unwrap();
        assert!(
            !report
                .metrics
                .notes
                .iter()
                .any(|n| n.contains("calling thread")),
            "level {level} ran without threads: {:?}",
            report.metrics.notes
        );
        assert!(
            report.metrics.chunks > 10,
            "level {level}: {} chunks",
            report.metrics.chunks
        );
        assert_eq!(comparable(Ok(report)), expected, "level {level}");
    }
    fs::remove_dir_all(&dir).unwrap();
}
