//! Settings: every setting of SPEC §9 and the four `OPTIMIZE_*` settings.
//!
//! Values arrive as text from three places — defaults, environment variables
//! and explicit values (command-line flags, library callers) — and are parsed
//! in one place, [`Settings::apply`], so every source rejects the same bad
//! values with the same `invalid_settings` error.

use std::str::FromStr;

use crate::FileError;

/// How `A/B/YYYY` dates are read (SPEC §5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DateOrder {
    /// Decided once per file from its values.
    #[default]
    Auto,
    /// Day first.
    Dmy,
    /// Month first.
    Mdy,
}

impl DateOrder {
    /// `auto`, `dmy` or `mdy`.
    pub fn as_str(self) -> &'static str {
        match self {
            DateOrder::Auto => "auto",
            DateOrder::Dmy => "dmy",
            DateOrder::Mdy => "mdy",
        }
    }
}

/// The decimal separator of text numbers (SPEC §6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DecimalSeparator {
    /// `1,234.50`
    #[default]
    Dot,
    /// `1.234,50`
    Comma,
}

/// An invoice field (SPEC §2), declared in the order of SPEC §2 and §4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    /// `invoice_id`
    InvoiceId,
    /// `invoice_date`
    InvoiceDate,
    /// `due_date`
    DueDate,
    /// `customer_id`
    CustomerId,
    /// `customer_name`
    CustomerName,
    /// `sku`
    Sku,
    /// `description`
    Description,
    /// `quantity`
    Quantity,
    /// `unit_price`
    UnitPrice,
    /// `tax_rate`
    TaxRate,
    /// `line_total`
    LineTotal,
    /// `currency`
    Currency,
}

impl Field {
    /// Every field in the order of SPEC §2.
    pub const ALL: [Field; 12] = [
        Field::InvoiceId,
        Field::InvoiceDate,
        Field::DueDate,
        Field::CustomerId,
        Field::CustomerName,
        Field::Sku,
        Field::Description,
        Field::Quantity,
        Field::UnitPrice,
        Field::TaxRate,
        Field::LineTotal,
        Field::Currency,
    ];

    /// The field's name, e.g. `"invoice_id"`.
    pub fn name(self) -> &'static str {
        match self {
            Field::InvoiceId => "invoice_id",
            Field::InvoiceDate => "invoice_date",
            Field::DueDate => "due_date",
            Field::CustomerId => "customer_id",
            Field::CustomerName => "customer_name",
            Field::Sku => "sku",
            Field::Description => "description",
            Field::Quantity => "quantity",
            Field::UnitPrice => "unit_price",
            Field::TaxRate => "tax_rate",
            Field::LineTotal => "line_total",
            Field::Currency => "currency",
        }
    }

    /// The field's position in [`Field::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Field {
    type Err = FileError;

    fn from_str(s: &str) -> Result<Field, FileError> {
        Field::ALL
            .into_iter()
            .find(|f| f.name() == s.trim())
            .ok_or_else(|| FileError::settings(format!("unknown field {s:?} in a column mapping")))
    }
}

/// Every setting, with a documented default for each.
///
/// Build with [`Settings::default`] (no environment),
/// [`Settings::from_env`] (defaults overlaid with environment variables) or
/// [`Settings::from_pairs`], then [`Settings::apply`] explicit values, which
/// win. Each of these checks every value it sets (SPEC §10: a bad value is
/// `invalid_settings`), the currency table included. Fields are public to
/// read; a program that writes them directly can run every check again
/// with [`Settings::validate`], which every processor does before it reads
/// a file. `#[non_exhaustive]`: new settings do not break anyone.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// `date_order` (`LEDGERLINE_DATE_ORDER`): `auto` (default), `dmy`, `mdy`.
    pub date_order: DateOrder,
    /// `decimal_separator` (`LEDGERLINE_DECIMAL_SEPARATOR`): `.` (default) or `,`.
    pub decimal_separator: DecimalSeparator,
    /// `default_currency` (`LEDGERLINE_DEFAULT_CURRENCY`): used when the
    /// currency is empty; trimmed and upper-cased. Default none. A code of
    /// the ISO 4217 table ([`crate::currency`]).
    pub default_currency: Option<String>,
    /// `delimiter` (`LEDGERLINE_DELIMITER`): `,` `;` `|` or tab; default
    /// none (sniffed).
    pub delimiter: Option<u8>,
    /// `encoding` (`LEDGERLINE_ENCODING`): a WHATWG encoding label; default
    /// none (detected).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// `sheet` (`LEDGERLINE_SHEET`): the Excel sheet to read; default the
    /// first worksheet.
    pub sheet: Option<String>,
    /// `max_errors` (`LEDGERLINE_MAX_ERRORS`): row errors listed in the
    /// report; default 1,000.
    pub max_errors: usize,
    /// `null_values` (`LEDGERLINE_NULL_VALUES`, comma-separated): values
    /// that count as empty, compared ignoring case; default `NA`, `N/A`,
    /// `#N/A`, `NULL`, `None`, `NaN`.
    pub null_values: Vec<String>,
    /// `line_total_tolerance` (`LEDGERLINE_TOLERANCE`): a `.` decimal ≥ 0;
    /// default none, meaning one minor unit of the row's currency.
    pub line_total_tolerance: Option<String>,
    /// Explicit column mapping, field → header name (`--map field=Header`;
    /// `LEDGERLINE_MAP`, `;`-separated). Default none.
    pub column_map: Vec<(Field, String)>,
    /// `max_workers` (`OPTIMIZE_MAX_WORKERS`): default `min(32, cpus + 4)`.
    pub max_workers: usize,
    /// `chunk_size` (`OPTIMIZE_CHUNK_SIZE`): rows per chunk; default 5,000.
    pub chunk_size: usize,
    /// `memory_threshold` (`OPTIMIZE_MEMORY_THRESHOLD`): megabytes; default 1,024.
    pub memory_threshold_mb: u64,
    /// `optimization_level` (`OPTIMIZE_LEVEL`): 1–3; default 2.
    pub optimization_level: u8,
    /// `max_record_bytes` (`LEDGERLINE_MAX_RECORD_BYTES`): the raw bytes of
    /// one CSV record above which it is the row error `record_too_long`
    /// (SPEC §10); a whole number >= 1, default 16,777,216 (16 MiB).
    pub max_record_bytes: usize,
}

/// The default `max_record_bytes`: 16 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 << 20;

/// The default `null_values`.
pub const DEFAULT_NULL_VALUES: [&str; 6] = ["NA", "N/A", "#N/A", "NULL", "None", "NaN"];

/// Setting names with their environment variables, in the order they are read.
const ENV_VARS: [(&str, &str); 15] = [
    ("date_order", "LEDGERLINE_DATE_ORDER"),
    ("decimal_separator", "LEDGERLINE_DECIMAL_SEPARATOR"),
    ("default_currency", "LEDGERLINE_DEFAULT_CURRENCY"),
    ("delimiter", "LEDGERLINE_DELIMITER"),
    ("encoding", "LEDGERLINE_ENCODING"),
    ("sheet", "LEDGERLINE_SHEET"),
    ("max_errors", "LEDGERLINE_MAX_ERRORS"),
    ("null_values", "LEDGERLINE_NULL_VALUES"),
    ("line_total_tolerance", "LEDGERLINE_TOLERANCE"),
    ("column_map", "LEDGERLINE_MAP"),
    ("max_workers", "OPTIMIZE_MAX_WORKERS"),
    ("chunk_size", "OPTIMIZE_CHUNK_SIZE"),
    ("memory_threshold", "OPTIMIZE_MEMORY_THRESHOLD"),
    ("optimization_level", "OPTIMIZE_LEVEL"),
    ("max_record_bytes", "LEDGERLINE_MAX_RECORD_BYTES"),
];

impl Default for Settings {
    fn default() -> Settings {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Settings {
            date_order: DateOrder::Auto,
            decimal_separator: DecimalSeparator::Dot,
            default_currency: None,
            delimiter: None,
            encoding: None,
            sheet: None,
            max_errors: 1000,
            null_values: DEFAULT_NULL_VALUES.iter().map(|s| s.to_string()).collect(),
            line_total_tolerance: None,
            column_map: Vec::new(),
            max_workers: (cpus + 4).min(32),
            chunk_size: 5000,
            memory_threshold_mb: 1024,
            optimization_level: 2,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

impl Settings {
    /// The bytes one file may hold in memory whole (a gzip-compressed
    /// workbook inflated for random access, an input read from a stream):
    /// half of `memory_threshold`. A file that would need more is
    /// `unreadable`, never an unbounded allocation.
    pub fn whole_file_budget_bytes(&self) -> u64 {
        self.memory_threshold_mb.saturating_mul(1 << 20) / 2
    }

    /// Defaults overlaid with the environment variables that are set (see
    /// each field). A bad value is an `invalid_settings` error naming the
    /// variable.
    pub fn from_env() -> Result<Settings, FileError> {
        Settings::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`Settings::from_env`] with variables looked up by `var`, for
    /// tests and embedders.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, FileError> {
        let mut settings = Settings::default();
        for (name, env) in ENV_VARS {
            let Some(value) = var(env) else { continue };
            if name == "column_map" {
                for pair in value.split(';').filter(|p| !p.trim().is_empty()) {
                    settings
                        .apply(name, pair)
                        .map_err(|e| FileError::settings(format!("{env}: {}", e.message)))?;
                }
                continue;
            }
            settings
                .apply(name, &value)
                .map_err(|e| FileError::settings(format!("{env}: {}", e.message)))?;
        }
        Ok(settings)
    }

    /// Sets one setting from text, as the command line and environment give
    /// it. `column_map` (alias `map`) takes `field=Header` and adds one
    /// mapping. Names also accept the command-line spellings (`workers`,
    /// `level`, `tolerance`, `memory_threshold_mb`).
    pub fn apply(&mut self, name: &str, value: &str) -> Result<(), FileError> {
        let bad = |what: &str| FileError::settings(format!("{name}: {what}, got {value:?}"));
        match name {
            "date_order" => {
                self.date_order = match value.trim() {
                    "auto" => DateOrder::Auto,
                    "dmy" => DateOrder::Dmy,
                    "mdy" => DateOrder::Mdy,
                    _ => return Err(bad("expected dmy, mdy or auto")),
                }
            }
            "decimal_separator" => {
                self.decimal_separator = match value {
                    "." => DecimalSeparator::Dot,
                    "," => DecimalSeparator::Comma,
                    _ => return Err(bad("expected . or ,")),
                }
            }
            "default_currency" => {
                let code = value.trim().to_uppercase();
                if code.is_empty() {
                    return Err(bad("expected a currency code"));
                }
                check_currency(&code)?;
                self.default_currency = Some(code);
            }
            "delimiter" => {
                self.delimiter = Some(match value {
                    "," => b',',
                    ";" => b';',
                    "|" => b'|',
                    "\t" | "\\t" | "tab" => b'\t',
                    _ => return Err(bad("expected , ; | or tab")),
                })
            }
            "encoding" => {
                let encoding = encoding_rs::Encoding::for_label(value.trim().as_bytes())
                    .ok_or_else(|| bad("unknown encoding label"))?;
                self.encoding = Some(encoding);
            }
            "sheet" => self.sheet = Some(value.to_string()),
            "max_errors" => {
                self.max_errors =
                    parse_count(value).ok_or_else(|| bad("expected a whole number >= 0"))?
            }
            "null_values" => {
                self.null_values = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "line_total_tolerance" | "tolerance" => {
                if !is_non_negative_dot_decimal(value.trim()) {
                    return Err(bad("expected a . decimal >= 0"));
                }
                self.line_total_tolerance = Some(value.trim().to_string());
            }
            "column_map" | "map" => {
                let (field, header) = value
                    .split_once('=')
                    .ok_or_else(|| bad("expected field=Header"))?;
                let field: Field = field.parse()?;
                self.column_map.retain(|(f, _)| *f != field);
                self.column_map.push((field, header.to_string()));
            }
            "max_workers" | "workers" => {
                self.max_workers = parse_count(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("expected a whole number >= 1"))?
            }
            "chunk_size" => {
                self.chunk_size = parse_count(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("expected a whole number >= 1"))?
            }
            "memory_threshold" | "memory_threshold_mb" => {
                self.memory_threshold_mb = parse_count(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("expected megabytes >= 1"))?
                    as u64
            }
            "max_record_bytes" => {
                self.max_record_bytes = parse_count(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("expected a whole number of bytes >= 1"))?
            }
            "optimization_level" | "level" => {
                self.optimization_level = match value.trim() {
                    "1" => 1,
                    "2" => 2,
                    "3" => 3,
                    _ => return Err(bad("expected 1, 2 or 3")),
                }
            }
            _ => return Err(FileError::settings(format!("unknown setting {name:?}"))),
        }
        Ok(())
    }
}

fn check_currency(code: &str) -> Result<(), FileError> {
    match crate::currency::lookup(code) {
        Some(_) => Ok(()),
        None => Err(FileError::settings(format!(
            "default_currency: {code:?} is not a code of the ISO 4217 table"
        ))),
    }
}

impl Settings {
    /// The defaults (no environment) with `pairs` applied in order, each
    /// by its name as [`Settings::apply`] takes it: the checked
    /// constructor for a program that has its settings as text.
    ///
    /// ```
    /// use ledgerline_core::Settings;
    /// let s = Settings::from_pairs([("date_order", "dmy"), ("default_currency", "eur")])?;
    /// assert_eq!(s.default_currency.as_deref(), Some("EUR"));
    /// assert!(Settings::from_pairs([("default_currency", "XXY")]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Settings, FileError> {
        let mut settings = Settings::default();
        for (name, value) in pairs {
            settings.apply(name, value)?;
        }
        Ok(settings)
    }

    /// Runs every check of SPEC §10 on the values as they are (for fields
    /// written directly): `invalid_settings` naming the first bad one.
    pub fn validate(&self) -> Result<(), FileError> {
        let positive = [
            ("max_workers", self.max_workers),
            ("chunk_size", self.chunk_size),
            ("max_record_bytes", self.max_record_bytes),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(FileError::settings(format!(
                    "{name}: expected a whole number >= 1, got 0"
                )));
            }
        }
        if self.memory_threshold_mb == 0 {
            return Err(FileError::settings(
                "memory_threshold: expected megabytes >= 1, got 0",
            ));
        }
        if !(1..=3).contains(&self.optimization_level) {
            return Err(FileError::settings(format!(
                "optimization_level: expected 1, 2 or 3, got {}",
                self.optimization_level
            )));
        }
        if let Some(d) = self.delimiter {
            if ![b',', b';', b'|', b'\t'].contains(&d) {
                return Err(FileError::settings(format!(
                    "delimiter: expected , ; | or tab, got {:?}",
                    char::from(d)
                )));
            }
        }
        if let Some(code) = &self.default_currency {
            check_currency(&code.trim().to_uppercase())?;
        }
        if let Some(t) = &self.line_total_tolerance {
            if !is_non_negative_dot_decimal(t.trim()) {
                return Err(FileError::settings(format!(
                    "tolerance: expected a . decimal >= 0, got {t:?}"
                )));
            }
        }
        Ok(())
    }
}

fn parse_count(value: &str) -> Option<usize> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// `[+]digits[.digits]` (a zero may carry a `-` sign).
fn is_non_negative_dot_decimal(v: &str) -> bool {
    let (negative, body) = match v.as_bytes().first() {
        Some(b'+') => (false, &v[1..]),
        Some(b'-') => (true, &v[1..]),
        _ => (false, v),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let shape = digits(int) && frac.is_none_or(digits);
    shape && (!negative || body.bytes().all(|b| b == b'0' || b == b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // Direct field writes are the point: what an embedder outside the crate
    // can do (where struct literals are not allowed).
    #[allow(clippy::field_reassign_with_default)]
    fn every_check_at_construction_and_in_validate() {
        // Each bad value, given as text, is refused where it is applied…
        for (name, value) in [
            ("default_currency", "XXY"),
            ("default_currency", ""),
            ("tolerance", "-1"),
            ("date_order", "ymd"),
            ("chunk_size", "0"),
            ("level", "4"),
            ("delimiter", ":"),
            ("map", "nofield=X"),
        ] {
            let e = Settings::from_pairs([(name, value)]).unwrap_err();
            assert_eq!(
                e.code,
                crate::FileErrorCode::InvalidSettings,
                "{name}={value}"
            );
        }
        let ok =
            Settings::from_pairs([("default_currency", " chf "), ("tolerance", "0.5")]).unwrap();
        assert_eq!(ok.default_currency.as_deref(), Some("CHF"));
        ok.validate().unwrap();
        Settings::default().validate().unwrap();
        // …and, written directly into the fields, by validate.
        let mut s = Settings::default();
        s.default_currency = Some("ABC".into());
        assert!(s.validate().unwrap_err().message.contains("ISO 4217"));
        let mut s = Settings::default();
        s.chunk_size = 0;
        assert!(s.validate().is_err());
        let mut s = Settings::default();
        s.optimization_level = 0;
        assert!(s.validate().is_err());
        let mut s = Settings::default();
        s.line_total_tolerance = Some("1,5".into());
        assert!(s.validate().is_err());
        let mut s = Settings::default();
        s.delimiter = Some(b'x');
        assert!(s.validate().is_err());
    }

    #[test]
    fn defaults() {
        let s = Settings::default();
        assert_eq!(s.max_errors, 1000);
        assert_eq!(s.chunk_size, 5000);
        assert_eq!(s.memory_threshold_mb, 1024);
        assert_eq!(s.optimization_level, 2);
        assert_eq!(s.max_record_bytes, 16_777_216);
        assert!(s.max_workers >= 5 && s.max_workers <= 32);
        assert_eq!(s.null_values.len(), 6);
    }

    #[test]
    fn environment_then_explicit() {
        let mut s = Settings::from_vars(|k| match k {
            "OPTIMIZE_CHUNK_SIZE" => Some("77".into()),
            "LEDGERLINE_DATE_ORDER" => Some("dmy".into()),
            "LEDGERLINE_MAP" => Some("invoice_id=Nr;currency=Cur".into()),
            "LEDGERLINE_MAX_RECORD_BYTES" => Some("4096".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.chunk_size, 77);
        assert_eq!(s.date_order, DateOrder::Dmy);
        assert_eq!(s.column_map.len(), 2);
        assert_eq!(s.max_record_bytes, 4096);
        s.apply("chunk_size", "9").unwrap();
        assert_eq!(s.chunk_size, 9);
        let err = Settings::from_vars(|k| (k == "OPTIMIZE_LEVEL").then(|| "4".into())).unwrap_err();
        assert!(err.message.contains("OPTIMIZE_LEVEL"));
    }

    #[test]
    fn bad_values_are_invalid_settings() {
        let mut s = Settings::default();
        for (name, value) in [
            ("date_order", "ymd"),
            ("decimal_separator", ";"),
            ("encoding", "klingon"),
            ("delimiter", ":"),
            ("max_errors", "-1"),
            ("max_errors", "1.5"),
            ("tolerance", "-0.01"),
            ("tolerance", "1,5"),
            ("tolerance", ".5"),
            ("map", "invoice_id"),
            ("map", "nonsense=X"),
            ("default_currency", "  "),
            ("level", "0"),
            ("workers", "0"),
            ("max_record_bytes", "0"),
            ("max_record_bytes", "-5"),
            ("max_record_bytes", "16MiB"),
            ("max_record_bytes", "99999999999999999999999"),
            ("bogus", "1"),
        ] {
            let err = s.apply(name, value).unwrap_err();
            assert_eq!(
                err.code,
                crate::FileErrorCode::InvalidSettings,
                "{name}={value}"
            );
        }
    }

    #[test]
    fn good_values() {
        let mut s = Settings::default();
        s.apply("delimiter", "tab").unwrap();
        assert_eq!(s.delimiter, Some(b'\t'));
        s.apply("delimiter", "\\t").unwrap();
        assert_eq!(s.delimiter, Some(b'\t'));
        s.apply("encoding", "latin1").unwrap();
        assert_eq!(s.encoding, Some(encoding_rs::WINDOWS_1252));
        s.apply("default_currency", " eur ").unwrap();
        assert_eq!(s.default_currency.as_deref(), Some("EUR"));
        s.apply("tolerance", "0.05").unwrap();
        s.apply("tolerance", "0").unwrap();
        s.apply("max_errors", "0").unwrap();
        s.apply("map", "invoice_id=Invoice No.").unwrap();
        assert_eq!(
            s.column_map,
            vec![(Field::InvoiceId, "Invoice No.".to_string())]
        );
    }
}
