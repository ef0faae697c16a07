//! Property: the optimized processor's report equals the standard one
//! (metrics aside) for any input, workers, chunk size and level.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{comparable, line, render, temp_file, wrap, WRAPPINGS};
use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{FileProcessor, Settings};
use ledgerline::optimized::OptimizedProcessor;
use proptest::prelude::*;

/// A few ids, so invoices span chunks with consistent and inconsistent lines.
static IDS: [&str; 6] = [
    "INV-1",
    "INV-2",
    "INV-3",
    "INV-4",
    "",
    "INV-0000000000000000000000000000000000000000000000000000000000000000001",
];

/// Whether the blocks path (levels 2–3) gave up and streamed the file
/// from its start (a cut was not a record boundary), as its metrics say.
fn fell_back(report: &ledgerline::core::Report) -> bool {
    report
        .metrics
        .notes
        .iter()
        .any(|n| n == ledgerline::optimized::FELL_BACK)
}

fn settings(pairs: &[(&str, String)]) -> Settings {
    let mut s = Settings::default();
    for (k, v) in pairs {
        s.apply(k, v).unwrap();
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn optimized_equals_standard(
        lines in prop::collection::vec(line(&IDS, false), 0..120),
        crlf in prop::collection::vec(any::<bool>(), 120),
        delimiter in prop::sample::select(vec![',', ';', '\t', '|']),
        workers in 1usize..=8,
        chunk in 1usize..=500,
        level in 1u8..=3,
        max_errors in prop::sample::select(vec![0usize, 3, 1000]),
        unterminated in any::<bool>(),
        wrapping in prop::sample::select(WRAPPINGS.to_vec()),
        // Levels 2–3 cut blocks of this size: many cuts in small inputs.
        block in prop::sample::select(vec![None, Some(64usize), Some(300)]),
        // An explicit order lets levels 2–3 hand blocks to their workers at once
        // (with `auto` the prelude reads these small files whole).
        date_order in prop::sample::select(vec!["auto", "mdy"]),
        // Small limits make record_too_long common (SPEC §10); the header
        // (123 bytes with one-byte delimiters) stays within them.
        max_record in prop::sample::select(vec![16_777_216usize, 124, 150]),
    ) {
        let mut bytes = render(&lines, &crlf, delimiter);
        if unterminated {
            bytes.extend_from_slice(b"INV-9,\"2024-01-01\n");
        }
        let path = temp_file("eq.csv", &wrap(&bytes, wrapping));
        let common = [
            ("max_errors", max_errors.to_string()),
            ("max_record_bytes", max_record.to_string()),
            ("date_order", date_order.to_string()),
        ];
        let standard = StandardProcessor::new(settings(&common));
        let expected = comparable(&standard, &path);
        let optimized = OptimizedProcessor::new(settings(&[
            ("max_errors", max_errors.to_string()),
            ("max_record_bytes", max_record.to_string()),
            ("date_order", date_order.to_string()),
            ("workers", workers.to_string()),
            ("chunk_size", chunk.to_string()),
            ("level", level.to_string()),
        ]));
        // Threads even for these small inputs: the pipeline is what is tested.
        let optimized = optimized.with_sequential_below(0);
        let optimized = match block {
            Some(b) => optimized.with_block_bytes(b),
            None => optimized,
        };
        let got = comparable(&optimized, &path);
        prop_assert_eq!(got, expected);
    }
}

/// Every fixture through every level with chunk sizes 1, 2, 7 and the
/// default, against the standard processor with the fixture's settings.
#[test]
fn every_fixture_through_every_level() {
    let mut files = common::fixtures_in(&common::fixture_dir("csv"));
    let root = common::fixture_dir("");
    files.push(root.join("invoices_1k.csv"));
    files.push(root.join("invoices_10k.csv"));
    files.sort();
    assert!(files.len() > 50, "fixtures found: {}", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let base = match common::fixture_settings(path) {
            Ok(Ok(base)) => base,
            // A fixture about invalid settings: its golden report says so.
            Ok(Err(e)) => {
                let golden = path.with_file_name(format!("{}.expected.json", common::stem(path)));
                let golden = common::read_json(&golden).unwrap();
                assert_eq!(
                    golden["error"]["code"],
                    "invalid_settings",
                    "{}: {e}",
                    path.display()
                );
                continue;
            }
            Err(broken) => panic!("broken fixture settings: {broken}"),
        };
        let expected = comparable(&StandardProcessor::new(base.clone()), path);
        let big = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("invoices_");
        for level in 1..=3u8 {
            for chunk in [1usize, 2, 7, 5000] {
                if big && chunk < 7 && level != 3 {
                    continue; // one-row chunks of 10k rows add time, not coverage
                }
                let mut s = base.clone();
                s.apply("level", &level.to_string()).unwrap();
                s.apply("chunk_size", &chunk.to_string()).unwrap();
                s.apply("workers", "3").unwrap();
                for below in [0, ledgerline::optimized::SEQUENTIAL_BELOW] {
                    let p = OptimizedProcessor::new(s.clone()).with_sequential_below(below);
                    if comparable(&p, path) != expected {
                        failures.push(format!(
                            "{} level {level} chunk {chunk} sequential below {below}",
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "optimized differs from standard:\n{}",
        failures.join("\n")
    );
}

/// Levels 2–3 cut blocks with a quote-parity scan: quoted newlines at every
/// position, and literal quotes inside unquoted fields (which fool the scan
/// and must make the blocks path fall back, never differ).
#[test]
fn level3_blocks_with_quoted_newlines_and_literal_quotes() {
    for literal_quotes in [false, true] {
        let mut text = String::from(
            "invoice_id,invoice_date,customer_id,description,quantity,unit_price,currency\n",
        );
        // Over 1 MiB, so the first block (read for the prelude) is followed
        // by blocks cut by the scan.
        for i in 0..30000 {
            let desc = match i % 5 {
                0 => "\"multi\nline, \"\"quoted\"\"\r\ntext\"".to_string(),
                1 if literal_quotes => "Pipe 3\" steel".to_string(),
                2 => "\"\"".to_string(),
                _ => format!("plain {i}"),
            };
            let sep = if i % 7 == 0 { "\r\n" } else { "\n" };
            text.push_str(&format!(
                "INV-{},2024-01-{:02},C{},{desc},{},1.{:02},EUR{sep}",
                i / 3,
                (i / 3) % 28 + 1,
                i / 3,
                i % 9 + 1,
                i % 100
            ));
        }
        let path = temp_file("level3.csv", text.as_bytes());
        let expected = comparable(&StandardProcessor::new(Settings::default()), &path);
        assert!(
            expected["rows"]["valid"].as_u64().unwrap() > 5000,
            "{}",
            expected["rows"]
        );
        for chunk in ["1", "50", "5000"] {
            let p = OptimizedProcessor::new(settings(&[
                ("level", "3".into()),
                ("chunk_size", chunk.into()),
            ]))
            .with_sequential_below(0);
            let report = p.process_file(&path).unwrap();
            assert_eq!(
                report.comparable_json(),
                expected,
                "literal quotes {literal_quotes}, chunk {chunk}"
            );
            // Without literal quotes every cut is a true boundary: the file
            // ran in blocks. With them, whether a cut of these block sizes
            // lands inside a field depends on where blocks end (the report
            // is equal either way); small blocks below make it certain.
            let fell = fell_back(&report);
            if !literal_quotes {
                assert!(!fell, "chunk {chunk}: {:?}", report.metrics.notes);
            }
        }
        if literal_quotes {
            // Blocks of 200 bytes: thousands of cuts, the quote parity
            // flipped every fifth row, so some cut lies inside a field and
            // the blocks path must notice and stream the file.
            let report = OptimizedProcessor::new(settings(&[("level", "3".into())]))
                .with_sequential_below(0)
                .with_block_bytes(200)
                .process_file(&path)
                .unwrap();
            assert_eq!(report.comparable_json(), expected);
            assert!(fell_back(&report), "{:?}", report.metrics.notes);
        }
    }
}

/// Blocks are parsed with the same limit as the streaming reader: with
/// `max_record_bytes` 50, long records (plain, quoted over lines, only
/// delimiters) are common and the reports agree at every level.
#[test]
fn record_too_long_through_every_level() {
    let mut text = String::from("invoice,date,account,qty,price,ccy\n");
    for i in 0..40000 {
        let line = match i % 6 {
            0 => format!("INV-{i},2024-01-02,C1,1,2.50,EUR{}\n", "X".repeat(i % 40)),
            1 => format!(
                "INV-{i},\"2024-01-02\n{}\",C1,1,2.50,EUR\n",
                "y\n".repeat(i % 30)
            ),
            2 => ",".repeat(i % 80) + "\n",
            _ => format!("INV-{i},2024-01-02,C{i},1,2.50,EUR\n"),
        };
        text.push_str(&line);
    }
    let path = temp_file("too_long.csv", text.as_bytes());
    let limit = [("max_record_bytes", "50".to_string())];
    let expected = comparable(&StandardProcessor::new(settings(&limit)), &path);
    assert!(
        expected["error_counts"]["record_too_long"]
            .as_u64()
            .unwrap()
            > 5000,
        "{}",
        expected["error_counts"]
    );
    for level in ["1", "2", "3"] {
        for chunk in ["7", "5000"] {
            let p = OptimizedProcessor::new(settings(&[
                ("max_record_bytes", "50".into()),
                ("level", level.into()),
                ("chunk_size", chunk.into()),
            ]))
            .with_sequential_below(0);
            let report = p.process_file(&path).unwrap();
            assert_eq!(
                report.comparable_json(),
                expected,
                "level {level} chunk {chunk}"
            );
            if level != "1" {
                assert!(!fell_back(&report), "{:?}", report.metrics.notes);
            }
        }
    }
}

/// One literal quote early on flips the quote-parity scan for the rest of
/// the file, so every cut it proposes lies inside a quoted field: the
/// blocks path must notice and stream the file, with the same report.
#[test]
fn level3_falls_back_when_the_scan_is_fooled() {
    let mut text = String::from(
        "invoice_id,invoice_date,customer_id,description,quantity,unit_price,currency\n",
    );
    text.push_str("INV-0,2024-01-01,C0,Pipe 3\" steel,1,1.00,EUR\n");
    // Over 1 MiB: the first block (read for the prelude) is already cut.
    for i in 1..40000 {
        text.push_str(&format!(
            "INV-{i},2024-01-01,C{i},\"two\nlines\",1,1.00,EUR\n"
        ));
    }
    let path = temp_file("fooled.csv", text.as_bytes());
    let expected = comparable(&StandardProcessor::new(Settings::default()), &path);
    assert_eq!(expected["rows"]["valid"], 40000);
    let report = OptimizedProcessor::new(settings(&[("level", "3".into())]))
        .with_sequential_below(0)
        .process_file(&path)
        .unwrap();
    assert_eq!(report.comparable_json(), expected);
    assert!(
        report
            .metrics
            .notes
            .iter()
            .any(|n| n.contains("not a record boundary")),
        "{:?}",
        report.metrics.notes
    );
}

/// The wrappings the property test uses are really read as what they
/// claim: the same rows as the plain text (Windows-1252 one more, its
/// `café` line), with the source saying how.
#[test]
fn wrappings_are_read_as_they_claim() {
    let text = b"invoice_id,invoice_date,customer_id,quantity,unit_price,currency\nINV-1,2024-01-02,C1,2,1.50,EUR\nINV-2,2024-01-03,C2,1,2.00,USD\n";
    let p = StandardProcessor::new(Settings::default());
    for how in WRAPPINGS {
        let path = temp_file("wrapped.csv", &wrap(text, how));
        let r = p.process_file(&path).unwrap();
        let (valid, invalid) = if how == common::Wrapping::Windows1252 {
            (2, 1)
        } else {
            (2, 0)
        };
        assert_eq!((r.rows.valid, r.rows.invalid), (valid, invalid), "{how:?}");
        let encoding = match how {
            common::Wrapping::Utf16Le => "utf-16le",
            common::Wrapping::Utf16Be => "utf-16be",
            common::Wrapping::Windows1252 => "windows-1252",
            _ => "utf-8",
        };
        assert_eq!(r.source.encoding.as_deref(), Some(encoding), "{how:?}");
        assert_eq!(
            r.source.compression.is_some(),
            how == common::Wrapping::Gzip,
            "{how:?}"
        );
    }
}

/// The block knob really makes levels 2 (the default) and 3 cut small
/// inputs into many blocks (quoted line breaks among them), and the report
/// stays the standard one.
#[test]
fn small_blocks_cut_small_inputs_at_levels_2_and_3() {
    let mut text = String::from(
        "invoice_id,invoice_date,customer_id,description,quantity,unit_price,currency\n",
    );
    for i in 0..300 {
        let desc = if i % 4 == 0 {
            "\"two\nlines\"".to_string()
        } else {
            format!("d{i}")
        };
        text.push_str(&format!(
            "INV-{},2024-01-02,C{},{desc},{},1.50,EUR\n",
            i / 3,
            i / 3,
            i % 5
        ));
    }
    let path = temp_file("blocks.csv", text.as_bytes());
    // An explicit date order: with `auto` the prelude would read all 300
    // records (fewer than 1,000) before any block reaches the workers.
    let expected = comparable(
        &StandardProcessor::new(settings(&[("date_order", "mdy".into())])),
        &path,
    );
    for level in [2u8, 3] {
        let report = OptimizedProcessor::new(settings(&[
            ("level", level.to_string()),
            ("date_order", "mdy".into()),
        ]))
        .with_sequential_below(0)
        .with_block_bytes(64)
        .process_file(&path)
        .unwrap();
        assert!(
            report.metrics.chunks > 50,
            "{} chunks: {}",
            report.metrics.chunks,
            serde_json::to_string(&report.metrics).unwrap()
        );
        assert_eq!(report.metrics.level, Some(level));
        assert!(!fell_back(&report), "{:?}", report.metrics.notes);
        assert_eq!(report.comparable_json(), expected);
    }
    // Level 1 streams it: one chunk of 5,000 rows holds all 300.
    let report = OptimizedProcessor::new(settings(&[
        ("level", "1".into()),
        ("date_order", "mdy".into()),
    ]))
    .with_sequential_below(0)
    .with_block_bytes(64)
    .process_file(&path)
    .unwrap();
    assert_eq!(report.metrics.chunks, 1);
    assert_eq!(report.comparable_json(), expected);
}
