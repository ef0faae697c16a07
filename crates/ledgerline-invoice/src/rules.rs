//! Resolved settings: everything validation needs, checked once before any
//! file is read.

use ledgerline_core::{DateOrder, DecimalSeparator, Field, FileError, Settings};

use crate::currency::{self, Currency};
use crate::decimal::{parse_decimal, Decimal};
use crate::header::normalize;

/// The settings of a run, parsed and checked: the invoice rules of SPEC §2–§7.
#[derive(Clone, Debug)]
pub struct Rules {
    /// The decimal separator of text numbers.
    pub decimal_separator: DecimalSeparator,
    /// The date order setting (may be [`DateOrder::Auto`]).
    pub date_order: DateOrder,
    /// The currency of rows whose currency is empty.
    pub default_currency: Option<Currency>,
    /// The `line_total` tolerance; `None` means one minor unit.
    pub tolerance: Option<Decimal>,
    /// How many row errors the report lists.
    pub max_errors: usize,
    /// Explicit column mapping: field → normalized header name.
    pub column_map: Vec<(Field, String)>,
    /// Null tokens, lower-cased, ASCII ones apart for a fast comparison.
    null_ascii: Vec<Vec<u8>>,
    null_other: Vec<String>,
    /// The shortest and longest null token in bytes, to skip most values
    /// with one comparison.
    null_len: (usize, usize),
    /// Bit `b` set when an ASCII null token starts with byte `b` (either
    /// case); a value starting with any other byte is not a token.
    null_first: [u64; 2],
}

impl Rules {
    /// Checks and resolves `settings` (SPEC §10): a bad value is the file
    /// error `invalid_settings`, reported before any file is read.
    pub fn new(settings: &Settings) -> Result<Rules, FileError> {
        settings.validate()?;
        let default_currency = match &settings.default_currency {
            None => None,
            Some(code) => Some(currency::lookup(code).ok_or_else(|| {
                FileError::settings(format!(
                    "default_currency: {code:?} is not a code of the ISO 4217 table"
                ))
            })?),
        };
        let tolerance = match &settings.line_total_tolerance {
            None => None,
            Some(text) => {
                let t = parse_decimal(text.trim().as_bytes(), DecimalSeparator::Dot)
                    .filter(|t| !t.is_negative())
                    .ok_or_else(|| {
                        FileError::settings(format!(
                            "tolerance: expected a . decimal >= 0, got {text:?}"
                        ))
                    })?;
                Some(t)
            }
        };
        let mut null_ascii = Vec::new();
        let mut null_other = Vec::new();
        for token in &settings.null_values {
            let token = token.trim();
            if token.is_empty() {
                continue;
            }
            if token.is_ascii() {
                null_ascii.push(token.to_ascii_lowercase().into_bytes());
            } else {
                null_other.push(token.to_lowercase());
            }
        }
        let lens = null_ascii.iter().map(Vec::len);
        let mut null_first = [0u64; 2];
        for t in &null_ascii {
            if let Some(&b) = t.first() {
                for c in [b.to_ascii_lowercase(), b.to_ascii_uppercase()] {
                    null_first[usize::from(c >> 6 & 1)] |= 1 << (c & 63);
                }
            }
        }
        let null_len = if null_other.is_empty() {
            (
                lens.clone().min().unwrap_or(usize::MAX),
                lens.max().unwrap_or(0),
            )
        } else {
            (0, usize::MAX)
        };
        Ok(Rules {
            decimal_separator: settings.decimal_separator,
            date_order: settings.date_order,
            default_currency,
            tolerance,
            max_errors: settings.max_errors,
            column_map: settings
                .column_map
                .iter()
                .map(|(f, name)| (*f, normalize(name)))
                .collect(),
            null_ascii,
            null_other,
            null_len,
            null_first,
        })
    }

    /// Whether a trimmed value is one of the null tokens (ignoring case).
    #[inline]
    pub fn is_null(&self, value: &str) -> bool {
        self.is_null_bytes(value.as_bytes())
    }

    /// [`Rules::is_null`] on bytes: bytes that are not UTF-8 are no token.
    #[inline]
    pub fn is_null_bytes(&self, value: &[u8]) -> bool {
        // Inlined: most values fail on length or first byte alone.
        self.null_length(value.len()) && self.null_start(value) && self.is_null_token(value)
    }

    /// Whether a value can start a null token: any non-ASCII first byte
    /// when a token is not ASCII, else the first bytes of the tokens.
    #[inline]
    fn null_start(&self, value: &[u8]) -> bool {
        let first = value.first().copied().unwrap_or(0);
        !self.null_other.is_empty()
            || (first < 128
                && self.null_first[usize::from(first >> 6 & 1)] & (1 << (first & 63)) != 0)
    }

    /// Whether a value of `len` bytes can be a null token at all.
    #[inline]
    fn null_length(&self, len: usize) -> bool {
        len >= self.null_len.0 && len <= self.null_len.1
    }

    /// [`Rules::is_null`] past the length and first-byte tests.
    #[inline(never)]
    fn is_null_token(&self, bytes: &[u8]) -> bool {
        if self
            .null_ascii
            .iter()
            .any(|t| t.eq_ignore_ascii_case(bytes))
        {
            return true;
        }
        !self.null_other.is_empty()
            && std::str::from_utf8(bytes).is_ok_and(|value| {
                let lower = value.to_lowercase();
                self.null_other.contains(&lower)
            })
    }

    /// Whether a value is empty after trimming or a null token: the test of
    /// empty fields and blank rows (SPEC §3).
    #[inline]
    pub fn is_empty_value(&self, raw: &[u8]) -> bool {
        let t = trim_bytes(raw);
        t.is_empty() || self.is_null_bytes(t)
    }
}

/// Trims Unicode white space (the White_Space property) from both ends;
/// ASCII is handled without decoding.
#[inline]
pub fn trim_bytes(raw: &[u8]) -> &[u8] {
    // Most values have a printable ASCII byte at both ends: nothing to trim.
    if let (Some(&first), Some(&last)) = (raw.first(), raw.last()) {
        if (b'!'..=b'~').contains(&first) && (b'!'..=b'~').contains(&last) {
            return raw;
        }
    }
    trim_edges(raw)
}

/// [`trim_bytes`] past its early return: out of line, so the common case
/// inlines into its callers.
#[inline(never)]
fn trim_edges(raw: &[u8]) -> &[u8] {
    let is_space = |b: u8| matches!(b, b'\t'..=b'\r' | b' ');
    let mut start = 0;
    let mut end = raw.len();
    while start < end && is_space(raw[start]) {
        start += 1;
    }
    while end > start && is_space(raw[end - 1]) {
        end -= 1;
    }
    let t = &raw[start..end];
    let non_ascii_edge =
        t.first().is_some_and(|b| *b >= 0x80) || t.last().is_some_and(|b| *b >= 0x80);
    if non_ascii_edge {
        if let Ok(s) = std::str::from_utf8(t) {
            return s.trim().as_bytes();
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_tokens_ignore_case() {
        let rules = Rules::new(&Settings::default()).unwrap();
        for v in ["NA", "na", "n/a", "#N/A", "null", "NONE", "nan"] {
            assert!(rules.is_null(v), "{v}");
        }
        for v in ["", "N", "NAN1", "0", "nil"] {
            assert!(!rules.is_null(v), "{v}");
        }
        assert!(rules.is_empty_value(b"  n/a \t"));
        assert!(rules.is_empty_value(" \u{a0}\u{2003}".as_bytes()));
        assert!(!rules.is_empty_value(b" x "));
    }

    /// `trim_bytes` without its early return, to compare against.
    fn trim_general(raw: &[u8]) -> &[u8] {
        let mut t = raw;
        while let [b'\t'..=b'\r' | b' ', rest @ ..] = t {
            t = rest;
        }
        while let [rest @ .., b'\t'..=b'\r' | b' '] = t {
            t = rest;
        }
        if t.first().is_some_and(|b| *b >= 0x80) || t.last().is_some_and(|b| *b >= 0x80) {
            if let Ok(s) = std::str::from_utf8(t) {
                return s.trim().as_bytes();
            }
        }
        t
    }

    #[test]
    fn trim_early_return_matches_general() {
        // Every 1–3 byte string over all edge classes: space, control,
        // printable, DEL, UTF-8 lead and continuation bytes.
        let alphabet: &[u8] = &[
            b' ', b'\t', b'\r', 0x0c, 0x01, b'!', b'a', b'~', 0x7f, 0xc2, 0xa0, 0xe3, 0x80,
        ];
        let mut buf = Vec::new();
        for len in 0..=3u32 {
            for mut code in 0..alphabet.len().pow(len) {
                buf.clear();
                for _ in 0..len {
                    buf.push(alphabet[code % alphabet.len()]);
                    code /= alphabet.len();
                }
                assert_eq!(trim_bytes(&buf), trim_general(&buf), "{buf:?}");
            }
        }
        for s in [
            "\u{a0}x\u{3000}",
            "x\u{a0}",
            "\u{3000}",
            " a b ",
            "ab",
            "\u{2003}a",
        ] {
            assert_eq!(
                trim_bytes(s.as_bytes()),
                trim_general(s.as_bytes()),
                "{s:?}"
            );
        }
    }

    #[test]
    fn trims_unicode_white_space() {
        assert_eq!(trim_bytes(b"  a b \r\n"), b"a b");
        assert_eq!(trim_bytes("\u{a0}x\u{3000}".as_bytes()), b"x");
        assert_eq!(trim_bytes(b"\x0b\x0cq\x0b"), b"q");
        // U+200B ZERO WIDTH SPACE is not White_Space.
        assert_eq!(trim_bytes("\u{200b}".as_bytes()), "\u{200b}".as_bytes());
    }

    #[test]
    fn settings_checked() {
        let mut s = Settings::default();
        // Refused where it is set, and caught here when written directly.
        assert!(s.apply("default_currency", "xyz").is_err());
        s.default_currency = Some("XYZ".into());
        assert!(Rules::new(&s).is_err());
        s.apply("default_currency", "eur").unwrap();
        let r = Rules::new(&s).unwrap();
        assert_eq!(
            r.default_currency.map(|c| c.code().to_string()).as_deref(),
            Some("EUR")
        );
        let mut s = Settings::default();
        s.apply("null_values", "-,Ünknown").unwrap();
        let r = Rules::new(&s).unwrap();
        assert!(r.is_null("ünknown"));
        assert!(r.is_null("-"));
        assert!(!r.is_null("NA"));
    }
}
