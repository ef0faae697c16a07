//! Property: the rows written out account for the report exactly, and both
//! processors write them byte for byte alike at every level and chunk size.
//!
//! For generated files (errors, inconsistent invoices, blank lines, every
//! delimiter): rejects + clean rows = every non-blank data row; the rejects'
//! row numbers are exactly the rows the report lists errors for; the clean
//! rows' `net`, `tax` and `gross` summed per currency equal the report's
//! totals exactly; the standard processor's rejects and clean rows equal the
//! optimized processor's, byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{line, render, temp_file};
use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{FileProcessor, Report, RunContext, Settings};
use ledgerline::optimized::OptimizedProcessor;
use ledgerline::output::Outputs;
use proptest::prelude::*;

static IDS: [&str; 5] = ["INV-1", "INV-2", "INV-3", "INV-4", ""];

fn settings(pairs: &[(&str, String)]) -> Settings {
    let mut s = Settings::default();
    for (k, v) in pairs {
        s.apply(k, v).unwrap();
    }
    s
}

/// Runs `p` over `input` with both outputs; the report and the two files'
/// bytes.
fn run(p: &dyn FileProcessor, input: &Path, tag: &str, ext: &str) -> (Report, Vec<u8>, Vec<u8>) {
    let dir = input.parent().unwrap();
    let rejects: PathBuf = dir.join(format!("{tag}-rejects.csv"));
    let clean: PathBuf = dir.join(format!("{tag}-clean.{ext}"));
    let outputs = Outputs::create(Some(&rejects), Some(&clean)).unwrap();
    let run = RunContext::new().with_rows(outputs.sink());
    let report = p.process_file_with(input, &run).unwrap();
    drop(run);
    outputs.finish().unwrap();
    let out = (
        report,
        std::fs::read(&rejects).unwrap(),
        std::fs::read(&clean).unwrap(),
    );
    std::fs::remove_file(rejects).unwrap();
    std::fs::remove_file(clean).unwrap();
    out
}

/// Exact decimal text → (mantissa, scale).
fn parse(text: &str) -> (i128, u32) {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = format!("{int}{frac}");
    (digits.parse().unwrap(), frac.len() as u32)
}

fn format(mantissa: i128, scale: u32) -> String {
    ledgerline::core::rows::Exact { mantissa, scale }.to_string()
}

/// The rejects' row numbers (first column, after the BOM and header).
fn rejected_rows(bytes: &[u8]) -> Vec<u64> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").expect("no BOM");
    // Ragged rows are written as read: records of any length.
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(body);
    assert_eq!(&r.headers().unwrap()[0], "row");
    r.records()
        .map(|rec| rec.unwrap()[0].parse().unwrap())
        .collect()
}

/// An exact sum: (mantissa, scale).
type Sum = (i128, u32);

/// Lines and Σnet, Σtax, Σgross of one currency's clean rows.
type Sums = (u64, Sum, Sum, Sum);

/// Per currency: the clean rows' sums (CSV).
fn clean_sums(bytes: &[u8]) -> BTreeMap<String, Sums> {
    let mut r = csv::Reader::from_reader(bytes);
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let (cur, net, tax, gross) = (col("currency"), col("net"), col("tax"), col("gross"));
    let mut sums: BTreeMap<String, Sums> = BTreeMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        let e = sums.entry(rec[cur].to_string()).or_default();
        e.0 += 1;
        for (acc, text) in [
            (&mut e.1, &rec[net]),
            (&mut e.2, &rec[tax]),
            (&mut e.3, &rec[gross]),
        ] {
            let (m, s) = parse(text);
            assert!(acc.0 == 0 || acc.1 == s, "scales differ within a currency");
            *acc = (acc.0 + m, s);
        }
    }
    sums
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn outputs_account_for_the_report_and_agree(
        lines in prop::collection::vec(line(&IDS, false), 0..120),
        crlf in prop::collection::vec(any::<bool>(), 120),
        delimiter in prop::sample::select(vec![',', ';', '\t']),
        workers in 1usize..=6,
        chunk in 1usize..=300,
        level in 1u8..=3,
        jsonl in any::<bool>(),
        block in prop::sample::select(vec![None, Some(64usize), Some(300)]),
    ) {
        let bytes = render(&lines, &crlf, delimiter);
        let input = temp_file("out.csv", &bytes);
        let base = [("max_errors", "100000".to_string()), ("date_order", "mdy".to_string())];
        let standard = StandardProcessor::new(settings(&base));
        let (report, rejects, clean) = run(&standard, &input, "std", "csv");

        // Every non-blank data row is a reject or a clean row.
        let rejected = rejected_rows(&rejects);
        prop_assert_eq!(rejected.len() as u64, report.rows.invalid);
        let mut by_currency = clean_sums(&clean);
        let clean_rows: u64 = by_currency.values().map(|v| v.0).sum();
        prop_assert_eq!(clean_rows, report.rows.valid);
        // The rejects are the rows the report lists errors for, in order.
        prop_assert!(rejected.windows(2).all(|w| w[0] < w[1]));
        let errors: BTreeSet<u64> = report.errors.iter().map(|e| e.row).collect();
        prop_assert_eq!(rejected.iter().copied().collect::<BTreeSet<u64>>(), errors);
        // The clean rows' amounts are the totals, exactly.
        for t in &report.totals {
            let (lines, net, tax, gross) = by_currency.remove(&t.currency).unwrap_or_default();
            prop_assert_eq!(lines, t.lines);
            prop_assert_eq!(format(net.0, net.1), t.net.to_string());
            prop_assert_eq!(format(tax.0, tax.1), t.tax.to_string());
            prop_assert_eq!(format(gross.0, gross.1), t.gross.to_string());
        }
        prop_assert!(by_currency.is_empty(), "clean rows in currencies without totals");

        // The optimized processor writes the same bytes.
        let ext = if jsonl { "jsonl" } else { "csv" };
        let (_, std_rejects, std_clean) = run(&standard, &input, "std2", ext);
        let optimized = OptimizedProcessor::new(settings(&[
            ("max_errors", "100000".to_string()),
            ("date_order", "mdy".to_string()),
            ("workers", workers.to_string()),
            ("chunk_size", chunk.to_string()),
            ("level", level.to_string()),
        ]))
        .with_sequential_below(0);
        let optimized = match block {
            Some(b) => optimized.with_block_bytes(b),
            None => optimized,
        };
        let (_, opt_rejects, opt_clean) = run(&optimized, &input, "opt", ext);
        prop_assert!(opt_rejects == std_rejects, "rejects differ");
        prop_assert!(opt_clean == std_clean, "clean rows differ");
        prop_assert_eq!(&std_rejects, &rejects);
    }
}

/// A failed run leaves no output file, not even a temporary one.
#[test]
fn a_failed_run_leaves_nothing() {
    let input = temp_file("broken.csv", b"no,header,we,know\n1,2,3,4\n");
    let dir = input.parent().unwrap().join("failed-outputs");
    std::fs::create_dir_all(&dir).unwrap();
    let outputs = Outputs::create(Some(&dir.join("r.csv")), Some(&dir.join("c.jsonl"))).unwrap();
    let run = RunContext::new().with_rows(outputs.sink());
    let result = StandardProcessor::new(Settings::default()).process_file_with(&input, &run);
    assert!(result.is_err(), "{result:?}");
    drop(run);
    drop(outputs);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
