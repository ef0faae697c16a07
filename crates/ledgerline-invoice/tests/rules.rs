//! The rules of SPEC §3–§4 and the merge of §7, one table row per check,
//! through the crate's public pieces (prelude → validator → merger) on
//! records built by hand: no reader, no processor. Expected values are
//! worked out from the SPEC by hand.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use ledgerline_core::{RecordBatch, RecordStatus, Report, Settings, Source};
use ledgerline_invoice::{read_prelude, Merger, Rules, Validator};

const HEADER: &[&str] = &[
    "invoice_id",
    "invoice_date",
    "due_date",
    "customer_id",
    "quantity",
    "unit_price",
    "tax_rate",
    "line_total",
    "currency",
];

/// Processes `rows` (after the header) in chunks of `chunk` records.
fn process(rows: &[Vec<&str>], chunk: usize, settings: &Settings) -> Report {
    let rules = Rules::new(settings).unwrap();
    let mut records: Vec<(u64, Vec<&str>)> = vec![(1, HEADER.to_vec())];
    records.extend(
        rows.iter()
            .enumerate()
            .map(|(i, r)| (i as u64 + 2, r.clone())),
    );
    let mut next = 0;
    let mut read = |batch: &mut RecordBatch, max: usize| {
        batch.clear();
        while batch.len() < max && next < records.len() {
            let (row, fields) = &records[next];
            for f in fields {
                batch.push_field(f.as_bytes());
            }
            batch.finish_record(*row, RecordStatus::Ok);
            next += 1;
        }
        Ok(batch.len())
    };
    let prelude = read_prelude(&rules, "t.csv", true, false, chunk, &mut read).unwrap();
    let validator = Validator::new(&rules, &prelude.columns, prelude.date_order, false, true);
    let mut merger = Merger::new(rules.max_errors);
    merger.add_blank(prelude.blank_rows);
    for b in &prelude.pending {
        merger.push(validator.validate(b));
    }
    if !prelude.at_end {
        let mut batch = RecordBatch::new();
        while read(&mut batch, chunk).unwrap() > 0 {
            merger.push(validator.validate(&batch));
        }
    }
    let source = Source {
        format: "csv".into(),
        compression: None,
        sheet: None,
        encoding: Some("utf-8".into()),
        delimiter: Some(",".into()),
        date_order: prelude.date_order.as_str().into(),
    };
    merger.finish(source, prelude.warnings.clone(), Default::default())
}

/// (row, column, code) of every listed error.
fn errors(r: &Report) -> Vec<(u64, Option<String>, String)> {
    r.errors
        .iter()
        .map(|e| {
            (
                e.row,
                e.column.map(str::to_string),
                e.code.as_str().to_string(),
            )
        })
        .collect()
}

/// A valid line: 2 × 10.00 at 20 % = 24.00 USD.
fn ok() -> Vec<&'static str> {
    vec![
        "INV-1",
        "2024-01-15",
        "2024-02-15",
        "C1",
        "2",
        "10.00",
        "0.20",
        "24.00",
        "USD",
    ]
}

fn with(field: usize, value: &'static str) -> Vec<&'static str> {
    let mut r = ok();
    r[field] = value;
    r
}

#[test]
fn every_field_check_of_section_4() {
    let long_id: &'static str = Box::leak("X".repeat(65).into_boxed_str());
    let id64: &'static str = Box::leak("X".repeat(64).into_boxed_str());
    // (row, expected errors as (column, code)); the row is alone in its file.
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>)> = vec![
        (ok(), vec![]),
        (with(0, ""), vec![("invoice_id", "missing_value")]),
        (with(0, "NULL"), vec![("invoice_id", "missing_value")]),
        (with(0, long_id), vec![("invoice_id", "value_too_long")]),
        (with(0, id64), vec![]),
        (with(1, ""), vec![("invoice_date", "missing_value")]),
        (
            with(1, "2024-02-30"),
            vec![("invoice_date", "invalid_date")],
        ),
        (with(1, "24-01-15"), vec![("invoice_date", "invalid_date")]),
        (with(2, "2024-13-01"), vec![("due_date", "invalid_date")]),
        (with(2, ""), vec![]),
        (
            with(2, "2024-01-14"),
            vec![("due_date", "due_before_issue")],
        ),
        (with(3, " "), vec![("customer_id", "missing_value")]),
        (with(4, "two"), vec![("quantity", "invalid_decimal")]),
        // A field in error blocks line_total_mismatch (§4: "when quantity,
        // unit_price, tax_rate and a present line_total have no error").
        (with(4, "0"), vec![("quantity", "zero_quantity")]),
        (with(4, "0.000"), vec![("quantity", "zero_quantity")]),
        (with(5, "-1.00"), vec![("unit_price", "negative_price")]),
        (with(5, ".5"), vec![("unit_price", "invalid_decimal")]),
        (with(6, "1.5"), vec![("tax_rate", "tax_rate_out_of_range")]),
        (with(6, "20%"), vec![]),
        (with(6, "%"), vec![("tax_rate", "invalid_decimal")]),
        (with(6, ""), vec![("line_total", "line_total_mismatch")]),
        (with(7, "24.01"), vec![]),
        (
            with(7, "24.02"),
            vec![("line_total", "line_total_mismatch")],
        ),
        (with(7, "abc"), vec![("line_total", "invalid_decimal")]),
        (with(7, ""), vec![]),
        (with(8, "usd"), vec![]),
        (with(8, "XYZ"), vec![("currency", "unknown_currency")]),
        // An erroneous currency rounds the expected total to 2 digits with
        // a tolerance of 0.01: 1 × 1.005 → 1.01 (1.005 at 3 digits, and
        // 1.01 would then be off by more than 0.001).
        (
            vec![
                "INV-1",
                "2024-01-15",
                "",
                "C1",
                "1",
                "1.005",
                "0",
                "1.01",
                "XYZ",
            ],
            vec![("currency", "unknown_currency")],
        ),
        (
            vec![
                "INV-1",
                "2024-01-15",
                "",
                "C1",
                "1",
                "1.005",
                "0",
                "1.03",
                "XYZ",
            ],
            vec![
                ("currency", "unknown_currency"),
                ("line_total", "line_total_mismatch"),
            ],
        ),
        (with(8, ""), vec![("currency", "missing_value")]),
        (
            vec!["", "x", "", "", "", "", "", "", ""],
            vec![
                ("invoice_id", "missing_value"),
                ("invoice_date", "invalid_date"),
                ("customer_id", "missing_value"),
                ("quantity", "missing_value"),
                ("unit_price", "missing_value"),
                ("currency", "missing_value"),
            ],
        ),
        (vec!["INV-1", "2024-01-15"], vec![]), // ragged: checked below
    ];
    for (row, want) in cases {
        let r = process(std::slice::from_ref(&row), 5000, &Settings::default());
        if row.len() != HEADER.len() {
            assert_eq!(errors(&r), vec![(2, None, "ragged_row".to_string())]);
            continue;
        }
        let want: Vec<(u64, Option<String>, String)> = want
            .iter()
            .map(|(c, code)| (2, Some(c.to_string()), code.to_string()))
            .collect();
        assert_eq!(errors(&r), want, "{row:?}");
        assert_eq!(r.rows.valid + r.rows.invalid, 1);
        assert_eq!(r.rows.invalid, u64::from(!want.is_empty()), "{row:?}");
    }
}

#[test]
fn default_currency_and_tolerance_settings() {
    let mut s = Settings::default();
    s.apply("default_currency", "eur").unwrap();
    let r = process(&[with(8, "")], 5000, &s);
    assert!(r.errors.is_empty());
    assert_eq!(r.totals[0].currency, "EUR");
    let mut s = Settings::default();
    s.apply("tolerance", "0.05").unwrap();
    assert!(process(&[with(7, "24.05")], 5000, &s).errors.is_empty());
    assert_eq!(process(&[with(7, "24.06")], 5000, &s).errors.len(), 1);
}

/// The anchor of an invoice is its first error-free row, fixed for the
/// file, across every chunk boundary; each differing column is named.
#[test]
fn invoice_inconsistent_in_every_column_across_chunks() {
    let rows = vec![
        with(4, "0"),          // row 2: error, not the anchor
        ok(),                  // row 3: the anchor (C1, USD, 2024-01-15)
        with(3, "C2"),         // row 4: customer differs
        with(8, "EUR"),        // row 5: currency differs
        with(1, "01/15/2024"), // row 6: same date written otherwise
        {
            let mut r = with(1, "2024-01-16");
            r[2] = "2024-02-16";
            r
        }, // row 7: date differs
        {
            let mut r = with(3, "C2");
            r[8] = "EUR";
            r
        }, // row 8: customer named first
        with(8, "usd"),        // row 9: upper-cased, agrees
        with(0, "INV-2"),      // row 10: another invoice
    ];
    let want = vec![
        (2, Some("quantity".into()), "zero_quantity".into()),
        (4, Some("customer_id".into()), "invoice_inconsistent".into()),
        (5, Some("currency".into()), "invoice_inconsistent".into()),
        (
            7,
            Some("invoice_date".into()),
            "invoice_inconsistent".into(),
        ),
        (8, Some("customer_id".into()), "invoice_inconsistent".into()),
    ];
    for chunk in 1..=rows.len() + 1 {
        let r = process(&rows, chunk, &Settings::default());
        assert_eq!(errors(&r), want, "chunk {chunk}");
        assert_eq!((r.rows.valid, r.rows.invalid), (4, 5), "chunk {chunk}");
        assert_eq!(r.invoices, 2);
        // Valid: rows 3, 6, 9 (INV-1, USD) and 10 (INV-2, USD): 4 lines of
        // 20.00 net, 4.00 tax, 24.00 gross.
        assert_eq!(r.totals.len(), 1);
        let t = &r.totals[0];
        assert_eq!((t.lines, t.invoices), (4, 2));
        assert_eq!(
            (t.net.as_str(), t.tax.as_str(), t.gross.as_str()),
            ("80.00", "16.00", "96.00")
        );
    }
}

/// §7: sums per currency, rounded per line half away from zero to the
/// currency's minor units.
#[test]
fn aggregates_round_per_line() {
    let rows = vec![
        // 1 × 0.005 JPY... 3 × 1.005 EUR = 3.015 → 3.02 net; tax 10 % of
        // 3.015 = 0.3015 → 0.30; expected gross 3.3165 → 3.32 (no line_total).
        vec!["A", "2024-01-15", "", "C1", "3", "1.005", "0.10", "", "EUR"],
        // -3 × 1.005 = -3.015 → -3.02 (away from zero); tax -0.30; gross -3.32.
        vec![
            "B",
            "2024-01-15",
            "",
            "C1",
            "-3",
            "1.005",
            "0.10",
            "",
            "EUR",
        ],
        // JPY 0 digits: 7 × 1.5 = 10.5 → 11; 8 % → 0.84 → 1; gross 11.34 → 11.
        vec!["C", "2024-01-15", "", "C1", "7", "1.5", "8%", "", "JPY"],
        // KWD 3 digits: 1 × 0.0005 → 0.001; tax 0; gross 0.001.
        vec!["D", "2024-01-15", "", "C1", "1", "0.0005", "", "", "KWD"],
        // gross takes line_total when present (within the tolerance of
        // 0.001 of the expected 0.002): 0.003 KWD, so gross 0.004 in all.
        vec![
            "E",
            "2024-01-15",
            "",
            "C1",
            "1",
            "0.002",
            "",
            "0.003",
            "KWD",
        ],
    ];
    let r = process(&rows, 2, &Settings::default());
    assert!(r.errors.is_empty(), "{:?}", errors(&r));
    let t: Vec<(&str, &str, &str, &str)> = r
        .totals
        .iter()
        .map(|t| {
            (
                t.currency.as_str(),
                t.net.as_str(),
                t.tax.as_str(),
                t.gross.as_str(),
            )
        })
        .collect();
    assert_eq!(
        t,
        vec![
            ("EUR", "0.00", "0.00", "0.00"),
            ("JPY", "11", "1", "11"),
            ("KWD", "0.003", "0.000", "0.004")
        ]
    );
}

/// §3, §5: blank rows are counted, not validated; the `auto` date order
/// is decided from the first records and warns when ambiguous.
#[test]
fn prelude_blank_rows_and_auto_date_order() {
    let blank = vec!["", " ", "NA", "", "", "", "", "", ""];
    let rows = vec![blank.clone(), with(1, "03/04/2024"), blank];
    let r = process(&rows, 1, &Settings::default());
    assert_eq!((r.rows.total, r.rows.blank), (1, 2));
    assert_eq!(r.source.date_order, "mdy");
    assert_eq!(r.warnings.len(), 1, "03/04 reads both ways");
    // A day over 12 decides dmy; 31/01 is then a valid date.
    let rows = vec![with(1, "03/04/2024"), with(1, "31/01/2024")];
    let r = process(&rows, 1, &Settings::default());
    assert_eq!(r.source.date_order, "dmy");
    assert!(r.warnings.is_empty());
    // 2024-01-15 is due on 2024-02-15; dmy 03/04 = 3 April: due before issue.
    assert_eq!(
        errors(&r),
        vec![(2, Some("due_date".into()), "due_before_issue".into())]
    );
}
