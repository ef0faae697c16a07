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

/// One line of the model: its fields as written.
#[derive(Clone, Debug)]
struct ModelLine {
    id: &'static str,
    customer: &'static str,
    date: &'static str,
    currency: &'static str,
    quantity: i128,
    /// Unit price in thousandths.
    price_milli: i128,
    /// Tax rate in hundredths of a percent as written (`""`, `0.2`, `7%`).
    tax: &'static str,
}

fn model_line() -> impl Strategy<Value = ModelLine> {
    (
        prop::sample::select(vec!["A", "B", "C", "D"]),
        prop::sample::select(vec!["K1", "K2"]),
        prop::sample::select(vec!["2024-05-01", "2024-05-02"]),
        prop::sample::select(vec!["EUR", "JPY", "KWD"]),
        prop::sample::select(vec![1i128, 2, -3, 0, 7]),
        prop::sample::select(vec![1500i128, 2005, 10000, 333, 0]),
        prop::sample::select(vec!["", "0.2", "7%", "0.125"]),
    )
        .prop_map(
            |(id, customer, date, currency, quantity, price_milli, tax)| ModelLine {
                id,
                customer,
                date,
                currency,
                quantity,
                price_milli,
                tax,
            },
        )
}

/// Half away from zero: `value / 10^shift`.
fn round_div(value: i128, shift: u32) -> i128 {
    let d = 10i128.pow(shift);
    let q = value / d;
    let r = (value % d).abs();
    if 2 * r >= d {
        q + value.signum()
    } else {
        q
    }
}

/// SPEC §4 and §7 for these lines, written from the SPEC alone: a row is
/// invalid when its quantity is zero, or (among rows with no other error)
/// when its customer, currency or date differs from the first such row of
/// its invoice; totals per currency of valid rows, each amount rounded per
/// line half away from zero to the currency's minor units.
/// Per currency: lines, invoices, net, tax, gross (minor units).
type Totals = BTreeMap<String, (u64, u64, i128, i128, i128)>;

fn model(lines: &[ModelLine]) -> (u64, u64, Totals) {
    let minor = |c: &str| match c {
        "JPY" => 0u32,
        "KWD" => 3,
        _ => 2,
    };
    // Tax rate in units of 10^-5 (0.125 = 12500, 7% = 7000, 0.2 = 20000).
    let tax = |t: &str| match t {
        "" => 0i128,
        "0.2" => 20000,
        "7%" => 7000,
        _ => 12500,
    };
    let mut anchors: BTreeMap<&str, (&str, &str, &str)> = BTreeMap::new();
    let mut valid = 0u64;
    let mut invalid = 0u64;
    let mut sums: BTreeMap<String, (u64, std::collections::BTreeSet<&str>, i128, i128, i128)> =
        BTreeMap::new();
    for l in lines {
        if l.quantity == 0 {
            invalid += 1;
            continue;
        }
        let anchor = *anchors
            .entry(l.id)
            .or_insert((l.customer, l.currency, l.date));
        if anchor != (l.customer, l.currency, l.date) {
            invalid += 1;
            continue;
        }
        valid += 1;
        let m = minor(l.currency);
        // q × p at scale 3; × t at scale 8.
        let amount = l.quantity * l.price_milli;
        let net = round_div(amount, 3 - m.min(3));
        let tax_amount = round_div(amount * tax(l.tax), 8 - m);
        let gross = round_div(amount * (100000 + tax(l.tax)), 8 - m);
        let e = sums.entry(l.currency.to_string()).or_default();
        e.0 += 1;
        e.1.insert(l.id);
        e.2 += net;
        e.3 += tax_amount;
        e.4 += gross;
    }
    let sums = sums
        .into_iter()
        .map(|(c, (n, ids, net, tax, gross))| (c, (n, ids.len() as u64, net, tax, gross)))
        .collect();
    (valid, invalid, sums)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Shared invoice ids, so `invoice_inconsistent` fires across rows and
    /// chunks: both processors against the independent model above.
    #[test]
    fn shared_invoices_match_an_independent_model(
        lines in prop::collection::vec(model_line(), 1..60),
        chunk in 1usize..9,
    ) {
        let mut text = String::from("invoice_id,invoice_date,customer_id,quantity,unit_price,tax_rate,currency\n");
        for l in &lines {
            text.push_str(&format!(
                "{},{},{},{},{}.{:03},{},{}\n",
                l.id, l.date, l.customer, l.quantity,
                l.price_milli / 1000, l.price_milli % 1000, l.tax, l.currency
            ));
        }
        let path = temp_file("model.csv", text.as_bytes());
        let (valid, invalid, sums) = model(&lines);
        for p in [
            Box::new(StandardProcessor::new(settings(chunk))) as Box<dyn FileProcessor>,
            Box::new(ledgerline::optimized::OptimizedProcessor::new(settings(chunk)).with_sequential_below(0)),
        ] {
            let report = serde_json::to_value(p.process_file(&path).unwrap()).unwrap();
            prop_assert_eq!(report["rows"]["valid"].as_u64(), Some(valid));
            prop_assert_eq!(report["rows"]["invalid"].as_u64(), Some(invalid));
            let got: Totals = report["totals"]
                .as_array().unwrap().iter().map(|t| {
                    let a = |k: &str| t[k].as_str().unwrap().replace('.', "").parse::<i128>().unwrap();
                    (t["currency"].as_str().unwrap().to_string(),
                     (t["lines"].as_u64().unwrap(), t["invoices"].as_u64().unwrap(), a("net"), a("tax"), a("gross")))
                }).collect();
            prop_assert_eq!(&got, &sums);
        }
    }
}
