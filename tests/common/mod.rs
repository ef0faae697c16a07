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

/// Mostly one of `good`, sometimes one of `bad`.
fn mostly(
    good: &'static [&'static str],
    bad: &'static [&'static str],
) -> impl Strategy<Value = String> {
    prop_oneof![12 => pick(good), 1 => pick(bad)]
}

/// Fields that are mostly valid, with every kind of error mixed in.
pub fn row(
    ids: &'static [&'static str],
    iso_dates_only: bool,
) -> impl Strategy<Value = Vec<String>> {
    let dates = if iso_dates_only {
        mostly(
            &[
                "2024-01-15",
                "2024-02-29",
                "2023-12-31",
                "2024-03-01T10:00:00Z",
            ],
            &["2024-02-30", "", "1899-12-31"],
        )
    } else {
        mostly(
            &[
                "2024-01-15",
                "05/03/2024",
                "5.3.2024",
                "2024-03-01 10:00",
                "01/02/2024",
            ],
            &["13/03/2024", "03/13/2024", "2024-02-30", "", "24-01-01"],
        )
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
            "Müller & Söhne",
            "semi;colon|pipe\ttab"
        ]),
        "[a-z ,;\"]{0,12}",
    ];
    (
        (
            pick(ids),
            dates,
            mostly(&["", "2024-12-31"], &["2023-01-01", "2024-13-01"]),
        ),
        (
            mostly(&["C1", "C2"], &["c1", "", "NA"]),
            text.clone(),
            pick(&["SKU-1", ""]),
            text,
        ),
        (
            mostly(
                &["1", "2", "2.5", "-3", "0.001", "1,000", "(2)"],
                &["0", "abc", "", "1234567890123456", "-0"],
            ),
            mostly(
                &["10.00", "0.333", "1,234.50", "2.675", "0", "0.005"],
                &["-1", "(5.00)", "1e3", "", "."],
            ),
            mostly(
                &["", "0.2", "20%", "0", "0.075", " 7.5 % "],
                &["1.5", "x", "%", "-0.1"],
            ),
            mostly(
                &["", "", "", "", "", "", "2.68", "25.00"],
                &["x", "12,34", "10.00"],
            ),
            mostly(
                &["USD", "EUR", "JPY", "KWD", "usd", "CLF"],
                &["XYZ", "", "N/A"],
            ),
        ),
    )
        .prop_flat_map(move |fields| (Just(fields), prop::bool::weighted(0.8)))
        .prop_map(
            move |(((id, d, due), (c, name, sku, desc), (q, p, t, lt, cur)), consistent)| {
                // Most lines of an invoice agree with its anchor: take the
                // customer, date and currency from the id.
                let (d, c, cur) = match ids.iter().position(|i| *i == id) {
                    Some(k) if consistent => {
                        let date = if iso_dates_only {
                            ["2024-01-15", "2024-02-29", "2023-12-31"]
                        } else {
                            ["2024-01-15", "05/03/2024", "5.3.2024"]
                        };
                        (
                            date[k % 3].to_string(),
                            ["C1", "C2"][k % 2].to_string(),
                            ["USD", "EUR", "JPY", "KWD", "CLF"][k % 5].to_string(),
                        )
                    }
                    _ => (d, c, cur),
                };
                vec![id, d, due, c, name, sku, desc, q, p, t, lt, cur]
            },
        )
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
    comparable_result(p.process_file(path))
}

/// The folder of one kind of fixture: `fixtures/<kind>`.
pub fn fixture_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(kind)
}

/// A fixture's name: its file name up to the first `.`, so
/// `gzip_basic.csv.gz` pairs with `gzip_basic.expected.json`.
pub fn stem(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.split('.').next().unwrap_or("").to_string()
}

/// Whether a file in a fixture folder is an input (not its expected report,
/// settings, expected `rows` output, a README or a script).
pub fn is_fixture(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    path.is_file()
        && !name.starts_with('.')
        && name != "README.md"
        && !name.ends_with(".py")
        && !name.ends_with(".expected.json")
        && !name.ends_with(".settings.json")
        && !name.ends_with(".rows.jsonl")
}

/// Every fixture input in `dir`, sorted.
pub fn fixtures_in(dir: &Path) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_fixture(p))
                .collect()
        })
        .unwrap_or_default();
    list.sort();
    list
}

/// A JSON file, parsed.
pub fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Default settings plus the fixture's `<name>.settings.json`, if any: an
/// object of setting name → string, or array of strings applied in order
/// (the repeatable `map`). The outer `Err` is a broken fixture; the inner one
/// a value `Settings::apply` rejects, which is then the fixture's expected
/// outcome.
pub fn fixture_settings(
    fixture: &Path,
) -> Result<Result<ledgerline::core::Settings, ledgerline::core::FileError>, String> {
    let mut settings = ledgerline::core::Settings::default();
    let path = fixture.with_file_name(format!("{}.settings.json", stem(fixture)));
    if !path.exists() {
        return Ok(Ok(settings));
    }
    let Value::Object(map) = read_json(&path)? else {
        return Err(format!("{}: not a JSON object", path.display()));
    };
    for (key, value) in &map {
        let values: Vec<&str> = match value {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .ok_or_else(|| format!("{}: {key}: not a string", path.display()))
                })
                .collect::<Result<Vec<&str>, String>>()?,
            _ => return Err(format!("{}: {key}: not a string or array", path.display())),
        };
        for v in values {
            if let Err(e) = settings.apply(key, v) {
                return Ok(Err(e));
            }
        }
    }
    Ok(Ok(settings))
}

/// A processor's result as comparable JSON (SPEC §8: without `metrics` and
/// `message`; file errors as their file-error report).
pub fn comparable_result(
    result: Result<ledgerline::core::Report, ledgerline::core::FileError>,
) -> Value {
    match result {
        Ok(report) => report.comparable_json(),
        Err(e) => {
            let mut value = e.to_report_json();
            strip_for_comparison(&mut value);
            value
        }
    }
}

/// A check that cannot run here: a visible notice, and a failure under
/// `CI=true`, where everything it needs must be present.
pub fn skip(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{why}; CI=true: a check that cannot run fails"
    );
    eprintln!("NOTICE: check skipped: {why}");
}

/// How a generated file's text is stored: each is a different path through
/// detection and the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrapping {
    /// UTF-8 as written.
    Plain,
    /// A UTF-8 byte order mark first.
    Utf8Bom,
    /// Gzip-compressed (in two members).
    Gzip,
    /// UTF-16 little-endian with its byte order mark.
    Utf16Le,
    /// UTF-16 big-endian with its byte order mark.
    Utf16Be,
    /// Windows-1252 (a last line with `é` makes it invalid UTF-8).
    Windows1252,
}

/// Every wrapping, for strategies.
pub const WRAPPINGS: [Wrapping; 6] = [
    Wrapping::Plain,
    Wrapping::Utf8Bom,
    Wrapping::Gzip,
    Wrapping::Utf16Le,
    Wrapping::Utf16Be,
    Wrapping::Windows1252,
];

/// `text` (UTF-8) stored as `how`.
pub fn wrap(text: &[u8], how: Wrapping) -> Vec<u8> {
    let s = String::from_utf8_lossy(text);
    match how {
        Wrapping::Plain => text.to_vec(),
        Wrapping::Utf8Bom => [b"\xEF\xBB\xBF".as_slice(), text].concat(),
        Wrapping::Gzip => {
            let half = text.len() / 2;
            let mut out = Vec::new();
            for part in [&text[..half], &text[half..]] {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(part).unwrap();
                out.extend(e.finish().unwrap());
            }
            out
        }
        Wrapping::Utf16Le => {
            let mut out = vec![0xFF, 0xFE];
            out.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
            out
        }
        Wrapping::Utf16Be => {
            let mut out = vec![0xFE, 0xFF];
            out.extend(s.encode_utf16().flat_map(u16::to_be_bytes));
            out
        }
        Wrapping::Windows1252 => {
            let text = format!("{s}caf\u{e9}\n");
            encoding_rs::WINDOWS_1252.encode(&text).0.into_owned()
        }
    }
}
