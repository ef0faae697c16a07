//! Shared test helpers: arbitrary invoice CSVs for property tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};

use ledgerline::core::{strip_for_comparison, FileProcessor};
use proptest::prelude::*;
use serde_json::Value;

pub const HEADER: [&str; 12] = [
    "invoice_id",
    "invoice_date",
    "due_date",
    "customer_id",
    "customer_name",
    "sku",
    "description",
    "quantity",
    "unit_price",
    "tax_rate",
    "line_total",
    "currency",
];

/// One record of a generated file.
#[derive(Clone, Debug)]
pub enum Line {
    /// A record of 12 fields.
    Row(Vec<String>),
    /// A blank record: empty, spaces, or only null tokens.
    Blank(String),
    /// A record with the wrong number of fields.
    Ragged(Vec<String>),
}

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(options).prop_map(str::to_string)
}

/// Fields that are mostly valid, with every kind of error mixed in.
pub fn row(
    ids: &'static [&'static str],
    iso_dates_only: bool,
) -> impl Strategy<Value = Vec<String>> {
    let dates: &'static [&'static str] = if iso_dates_only {
        &[
            "2024-01-15",
            "2024-02-29",
            "2023-12-31",
            "2024-02-30",
            "",
            "2024-03-01T10:00:00Z",
        ]
    } else {
        &[
            "2024-01-15",
            "05/03/2024",
            "13/03/2024",
            "03/13/2024",
            "5.3.2024",
            "2024-02-30",
            "",
            "2024-03-01 10:00",
        ]
    };
    let text = prop_oneof![
        pick(&[
            "Widget",
            "Gadget, large",
            "Pipe 3\" steel",
            "a \"quoted\" word",
            "line\nbreak",
            "x\r\ny",
            "",
            "  padded  ",
            "Müller & Söhne"
        ]),
        "[a-z ,;\"]{0,12}",
    ];
    (
        (
            pick(ids),
            pick(dates),
            pick(&["", "2024-02-15", "2023-01-01", "2024-13-01"]),
        ),
        (
            pick(&["C1", "C2", "c1", "", "NA"]),
            text.clone(),
            pick(&["SKU-1", ""]),
            text,
        ),
        (
            pick(&[
                "1",
                "2",
                "2.5",
                "-3",
                "0",
                "abc",
                "",
                "1,000",
                "0.001",
                "1234567890123456",
            ]),
            pick(&[
                "10.00", "0.333", "-1", "(5.00)", "1,234.50", "2.675", "0", "1e3", "",
            ]),
            pick(&["", "0.2", "20%", "1.5", "x", "0", "%", "0.075"]),
            pick(&["", "12.00", "10.00", "25.00", "2.68", "x", "0.00", "3"]),
            pick(&["USD", "EUR", "JPY", "KWD", "usd", "XYZ", "", "N/A"]),
        ),
    )
        .prop_map(|((id, d, due), (c, name, sku, desc), (q, p, t, lt, cur))| {
            vec![id, d, due, c, name, sku, desc, q, p, t, lt, cur]
        })
}

pub fn line(ids: &'static [&'static str], iso_dates_only: bool) -> impl Strategy<Value = Line> {
    prop_oneof![
        20 => row(ids, iso_dates_only).prop_map(Line::Row),
        1 => pick(&["", "   ", ",,,,,,,,,,,", " NA , null,,,,,,,,,,"]).prop_map(Line::Blank),
        1 => prop::collection::vec(pick(&["a", "1", ""]), 1..15)
            .prop_filter("ragged", |v| v.len() != 12)
            .prop_map(Line::Ragged),
    ]
}

/// A CSV field, quoted when it must be.
pub fn field(f: &str, delimiter: char) -> String {
    if f.contains(delimiter)
        || f.contains('"')
        || f.contains('\n')
        || f.contains('\r')
        || f.starts_with(' ')
    {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// The bytes of a file with these lines.
pub fn render(lines: &[Line], crlf: &[bool], delimiter: char) -> Vec<u8> {
    let mut out = String::new();
    let d = delimiter.to_string();
    out.push_str(&HEADER.join(&d));
    out.push('\n');
    for (i, l) in lines.iter().enumerate() {
        let text = match l {
            Line::Row(fields) | Line::Ragged(fields) => fields
                .iter()
                .map(|f| field(f, delimiter))
                .collect::<Vec<_>>()
                .join(&d),
            Line::Blank(b) => b.replace(',', &d),
        };
        out.push_str(&text);
        out.push_str(if crlf.get(i).copied().unwrap_or(false) {
            "\r\n"
        } else {
            "\n"
        });
    }
    out.into_bytes()
}

/// Writes `bytes` to a fresh temporary file.
pub fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ledgerline-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{n}-{name}"));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(bytes).unwrap();
    path
}

/// The report (or file error) as comparable JSON.
pub fn comparable(p: &dyn FileProcessor, path: &Path) -> Value {
    match p.process_file(path) {
        Ok(r) => r.comparable_json(),
        Err(e) => {
            let mut v = e.to_report_json();
            strip_for_comparison(&mut v);
            v
        }
    }
}
