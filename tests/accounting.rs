//! Property: every data row read is counted exactly once — valid, invalid or
//! blank — and the totals equal the sum over valid rows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{line, render, temp_file, Line};
use ledgerline::baseline::StandardProcessor;
use ledgerline::core::{FileProcessor, Settings};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Invoice ids that never repeat, so rows do not interact: each row's fate
/// and amounts are its own.
static UNIQUE: [&str; 1] = ["UNIQUE"];

fn settings(chunk: usize) -> Settings {
    let mut s = Settings::default();
    s.apply("chunk_size", &chunk.to_string()).unwrap();
    s.apply("max_errors", "100000").unwrap();
    s.apply("date_order", "mdy").unwrap();
    s
}

/// Per-currency (lines, net, tax, gross) as exact decimal strings summed by
/// hand-rolled fixed-point arithmetic on the printed amounts.
fn totals(report: &serde_json::Value) -> BTreeMap<String, (u64, i128, i128, i128)> {
    let amount =
        |v: &serde_json::Value| -> i128 { v.as_str().unwrap().replace('.', "").parse().unwrap() };
    report["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["currency"].as_str().unwrap().to_string(),
                (
                    t["lines"].as_u64().unwrap(),
                    amount(&t["net"]),
                    amount(&t["tax"]),
                    amount(&t["gross"]),
                ),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_row_counted_once_and_totals_add_up(
        lines in prop::collection::vec(line(&UNIQUE, true), 1..40),
        chunk in 1usize..9,
    ) {
        // Give every row its own invoice id.
        let lines: Vec<Line> = lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| match l {
                Line::Row(mut f) => {
                    if !f[0].is_empty() {
                        f[0] = format!("INV-{i}");
                    }
                    Line::Row(f)
                }
                other => other,
            })
            .collect();
        let crlf = vec![false; lines.len()];
        let whole = temp_file("whole.csv", &render(&lines, &crlf, ','));
        let p = StandardProcessor::new(settings(chunk));
        let report = serde_json::to_value(p.process_file(&whole).unwrap()).unwrap();
        let rows = &report["rows"];
        let (total, valid, invalid, blank) = (
            rows["total"].as_u64().unwrap(),
            rows["valid"].as_u64().unwrap(),
            rows["invalid"].as_u64().unwrap(),
            rows["blank"].as_u64().unwrap(),
        );
        // Every record after the header is one data row.
        prop_assert_eq!(total, valid + invalid);
        prop_assert_eq!(total + blank, lines.len() as u64);
        let error_rows: std::collections::BTreeSet<u64> = report["errors"]
            .as_array().unwrap().iter().map(|e| e["row"].as_u64().unwrap()).collect();
        prop_assert_eq!(error_rows.len() as u64, invalid);

        // The same rows one file each: counts and totals must add up.
        let mut sum: BTreeMap<String, (u64, i128, i128, i128)> = BTreeMap::new();
        let (mut v, mut inv, mut b) = (0, 0, 0);
        for l in &lines {
            let one = temp_file("one.csv", &render(std::slice::from_ref(l), &[false], ','));
            let r = serde_json::to_value(p.process_file(&one).unwrap()).unwrap();
            v += r["rows"]["valid"].as_u64().unwrap();
            inv += r["rows"]["invalid"].as_u64().unwrap();
            b += r["rows"]["blank"].as_u64().unwrap();
            for (c, (n, net, tax, gross)) in totals(&r) {
                let e = sum.entry(c).or_default();
                e.0 += n;
                e.1 += net;
                e.2 += tax;
                e.3 += gross;
            }
        }
        prop_assert_eq!((v, inv, b), (valid, invalid, blank));
        prop_assert_eq!(totals(&report), sum);
    }
}
