//! Excel cell values as the text SPEC §6 and §9 give them: numbers as their
//! 15-significant-digit positional text, date cells as `YYYY-MM-DD` or
//! `YYYY-MM-DDTHH:MM:SS`.

use std::fmt::Write as _;

use calamine::{Data, DataRef};
use ledgerline_core::calendar::{civil_from_days, days_from_civil};
use ledgerline_core::CellKind;

/// Writes `x` into `out` as Excel holds it (SPEC §6): correctly rounded to
/// 15 significant digits, positional, no trailing zeros, no exponent, `-0`
/// as `0`. Returns `false` (writing nothing) for NaN and infinities, which a
/// workbook cannot hold.
pub(crate) fn number_text(x: f64, out: &mut String) -> bool {
    if !x.is_finite() {
        return false;
    }
    if x == 0.0 {
        out.push('0');
        return true;
    }
    // `{:.14e}` is correctly rounded from the exact binary value, which is
    // precisely "the double rounded to 15 significant digits".
    let sci = format!("{:.14e}", x.abs());
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return false;
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return false;
    };
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    if x < 0.0 {
        out.push('-');
    }
    // The value is 0.DIGITS × 10^point.
    let point = exp + 1;
    let n = digits.len() as i32;
    let digits = std::str::from_utf8(&digits).unwrap_or("0");
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(digits);
    } else if point >= n {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (point - n) as usize));
    } else {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    }
    true
}

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// The largest serial Excel shows as a date (9999-12-31 in the 1900 system).
const MAX_SERIAL_DAYS: i64 = 2_958_465;

/// Writes a date cell's serial as SPEC §9 prints it: the fraction rounded
/// to the millisecond, then seconds truncated; `YYYY-MM-DD` when the time is
/// under one second, else `YYYY-MM-DDTHH:MM:SS`. The 1900 system keeps
/// Excel's fictitious days: serial 0 is `1900-01-00` and 60 is `1900-02-29`,
/// which validation then rejects as not a calendar date. Returns `false`
/// for serials outside what Excel shows as dates (negative, past 9999).
pub(crate) fn serial_date_text(serial: f64, is_1904: bool, out: &mut String) -> bool {
    if serial.is_nan() || serial < 0.0 || !serial.is_finite() {
        return false;
    }
    let mut days = serial.floor() as i64;
    let mut ms = ((serial - serial.floor()) * DAY_MS as f64).round() as i64;
    if ms >= DAY_MS {
        days += 1;
        ms -= DAY_MS;
    }
    if days > MAX_SERIAL_DAYS {
        return false;
    }
    let (y, m, d) = if is_1904 {
        civil_from_days(days_from_civil(1904, 1, 1) + days)
    } else if days == 0 {
        (1900, 1, 0)
    } else if days == 60 {
        (1900, 2, 29)
    } else if days < 60 {
        civil_from_days(days_from_civil(1899, 12, 31) + days)
    } else {
        civil_from_days(days_from_civil(1899, 12, 30) + days)
    };
    write_date_time(y, m, d, ms / 1000, out);
    true
}

fn write_date_time(y: i64, m: i64, d: i64, secs: i64, out: &mut String) {
    let _ = write!(out, "{y:04}-{m:02}-{d:02}");
    if secs > 0 {
        let _ = write!(
            out,
            "T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
    }
}

/// Writes an ISO 8601 date-time (OpenDocument's `date-value`, e.g.
/// `2024-01-15` or `2024-01-15T10:30:00.25`) as SPEC §9 prints a date cell.
/// Returns `false` when it is not of that shape.
pub(crate) fn iso_date_text(iso: &str, out: &mut String) -> bool {
    let b = iso.trim().as_bytes();
    let num = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    let parse = || -> Option<(i64, i64, i64, i64)> {
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let (y, m, d) = (num(&b[..4])?, num(&b[5..7])?, num(&b[8..10])?);
        let mut ms = 0;
        if b.len() > 10 {
            if b[10] != b'T' || b.len() < 19 || b[13] != b':' || b[16] != b':' {
                return None;
            }
            let (hh, mm, ss) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
            let mut frac_ms = 0.0;
            if b.len() > 19 {
                if b[19] != b'.' {
                    return None;
                }
                let digits = &b[20..];
                num(digits)?;
                let text = format!("0.{}", std::str::from_utf8(digits).ok()?);
                frac_ms = (text.parse::<f64>().ok()? * 1000.0).round();
            }
            ms = (hh * 3600 + mm * 60 + ss) * 1000 + frac_ms as i64;
        }
        Some((y, m, d, ms))
    };
    let Some((y, m, d, ms)) = parse() else {
        return false;
    };
    if ms >= DAY_MS {
        let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + ms / DAY_MS);
        write_date_time(y, m, d, ms % DAY_MS / 1000, out);
    } else {
        write_date_time(y, m, d, ms / 1000, out);
    }
    true
}

/// Writes a streamed cell's text into `out` and returns its kind, or `None`
/// for a cell that holds no value (empty, or an empty string).
pub(crate) fn data_ref_text(
    value: &DataRef<'_>,
    is_1904: bool,
    out: &mut String,
) -> Option<CellKind> {
    out.clear();
    match value {
        DataRef::Empty => None,
        DataRef::SharedString(s) => text(s, out),
        DataRef::String(s) => text(s, out),
        DataRef::Int(i) => number(*i as f64, out),
        DataRef::Float(f) => number(*f, out),
        DataRef::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            Some(CellKind::Bool)
        }
        DataRef::DateTime(dt) => date(dt.as_f64(), is_1904, out),
        DataRef::DateTimeIso(s) => iso(s, out),
        DataRef::DurationIso(s) => text(s, out),
        DataRef::Error(e) => {
            let _ = write!(out, "{e}");
            Some(CellKind::Error)
        }
    }
}

/// The bytes of text a streamed cell's value holds (its strings; other
/// values are a few bytes, counted as 8), for the expansion bound.
pub(crate) fn value_len(value: &DataRef<'_>) -> usize {
    match value {
        DataRef::SharedString(s) => s.len(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.len(),
        _ => 8,
    }
}

/// [`data_ref_text`] for a cell of a workbook loaded whole.
pub(crate) fn data_text(value: &Data, is_1904: bool, out: &mut String) -> Option<CellKind> {
    out.clear();
    match value {
        Data::Empty => None,
        Data::String(s) => text(s, out),
        Data::Int(i) => number(*i as f64, out),
        Data::Float(f) => number(*f, out),
        Data::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            Some(CellKind::Bool)
        }
        Data::DateTime(dt) => date(dt.as_f64(), is_1904, out),
        Data::DateTimeIso(s) => iso(s, out),
        Data::DurationIso(s) => text(s, out),
        Data::Error(e) => {
            let _ = write!(out, "{e}");
            Some(CellKind::Error)
        }
    }
}

fn text(s: &str, out: &mut String) -> Option<CellKind> {
    if s.is_empty() {
        return None;
    }
    out.push_str(s);
    Some(CellKind::Text)
}

/// Excel holds every number as a double, integers included, so an integer
/// cell goes through the same 15-digit rounding.
fn number(x: f64, out: &mut String) -> Option<CellKind> {
    if number_text(x, out) {
        Some(CellKind::Number)
    } else {
        out.push_str("#NUM!");
        Some(CellKind::Error)
    }
}

/// A serial that no date can show stays a number.
fn date(serial: f64, is_1904: bool, out: &mut String) -> Option<CellKind> {
    if serial_date_text(serial, is_1904, out) {
        Some(CellKind::Date)
    } else {
        out.clear();
        number(serial, out)
    }
}

fn iso(s: &str, out: &mut String) -> Option<CellKind> {
    if iso_date_text(s, out) {
        Some(CellKind::Date)
    } else {
        out.clear();
        text(s, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(x: f64) -> String {
        let mut s = String::new();
        assert!(number_text(x, &mut s));
        s
    }

    fn serial(x: f64, is_1904: bool) -> String {
        let mut s = String::new();
        assert!(serial_date_text(x, is_1904, &mut s));
        s
    }

    #[test]
    fn numbers_as_fifteen_significant_digits() {
        assert_eq!(num(0.1 + 0.2), "0.3");
        assert_eq!(num(1e20), "100000000000000000000");
        assert_eq!(num(1e-7), "0.0000001");
        assert_eq!(num(123456789012345678.0), "123456789012346000");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(2.675), "2.675");
        assert_eq!(num(1.0 / 3.0), "0.333333333333333");
        assert_eq!(num(-2.0 / 3.0), "-0.666666666666667");
        assert_eq!(num(42.0), "42");
        assert_eq!(num(-1234.5), "-1234.5");
        assert_eq!(num(100.0), "100");
        assert_eq!(num(0.000123), "0.000123");
        let mut s = String::new();
        assert!(!number_text(f64::NAN, &mut s));
        assert!(s.is_empty());
    }

    #[test]
    fn serial_dates_1900_with_the_leap_year_bug() {
        assert_eq!(serial(1.0, false), "1900-01-01");
        assert_eq!(serial(59.0, false), "1900-02-28");
        assert_eq!(serial(60.0, false), "1900-02-29");
        assert_eq!(serial(61.0, false), "1900-03-01");
        assert_eq!(serial(0.0, false), "1900-01-00");
        // 2024-01-15 is serial 45306 (Excel: =DATE(2024,1,15)).
        assert_eq!(serial(45306.0, false), "2024-01-15");
        assert_eq!(serial(45306.5, false), "2024-01-15T12:00:00");
        assert_eq!(serial(2_958_465.0, false), "9999-12-31");
        let mut s = String::new();
        assert!(!serial_date_text(2_958_466.0, false, &mut s));
        assert!(!serial_date_text(-1.0, false, &mut s));
    }

    #[test]
    fn serial_dates_1904() {
        assert_eq!(serial(0.0, true), "1904-01-01");
        assert_eq!(serial(1.0, true), "1904-01-02");
        // The two systems are 1462 days apart.
        assert_eq!(serial(45306.0 - 1462.0, true), "2024-01-15");
    }

    #[test]
    fn time_rounded_to_the_millisecond_then_seconds_truncated() {
        // 0.4 ms rounds down to midnight: the date alone.
        assert_eq!(serial(45306.0 + 0.0004 / 86400.0, false), "2024-01-15");
        // 999.6 ms rounds up to one second.
        assert_eq!(
            serial(45306.0 + 0.9996 / 86400.0, false),
            "2024-01-15T00:00:01"
        );
        // 1.9 s truncates to 1 s.
        assert_eq!(
            serial(45306.0 + 1.9 / 86400.0, false),
            "2024-01-15T00:00:01"
        );
        // Half a millisecond before midnight rounds into the next day.
        assert_eq!(
            serial(45306.0 + 86_399.999_6 / 86400.0, false),
            "2024-01-16"
        );
        assert_eq!(
            serial(
                45306.0 + (13.0 * 3600.0 + 5.0 * 60.0 + 7.0) / 86400.0,
                false
            ),
            "2024-01-15T13:05:07"
        );
    }

    #[test]
    fn iso_dates_of_opendocument() {
        let iso = |s: &str| {
            let mut out = String::new();
            iso_date_text(s, &mut out).then_some(out)
        };
        assert_eq!(iso("2024-01-15").as_deref(), Some("2024-01-15"));
        assert_eq!(iso("2024-01-15T00:00:00").as_deref(), Some("2024-01-15"));
        assert_eq!(
            iso("2024-01-15T10:30:05.75").as_deref(),
            Some("2024-01-15T10:30:05")
        );
        assert_eq!(
            iso("2024-01-31T23:59:59.9999").as_deref(),
            Some("2024-02-01")
        );
        assert_eq!(iso("PT12H"), None);
    }
}
