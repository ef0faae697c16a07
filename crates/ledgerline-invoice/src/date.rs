//! Dates (SPEC §5, §10): text forms, the `auto` date-order vote and Excel
//! serial dates.

use std::fmt;

use ledgerline_core::calendar::days_from_civil;
use ledgerline_core::DateOrder;

use crate::decimal::{round_scaled, Decimal};

/// The years a date may have (SPEC §5).
const YEARS: std::ops::RangeInclusive<i32> = 1900..=2999;

/// Milliseconds in a day.
const DAY_MS: i128 = 86_400_000;

/// A calendar date. Comparable; days since 1970-01-01 (negative before).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub i32);

impl Date {
    /// The date `y-m-d` of the proleptic Gregorian calendar, if it exists.
    ///
    /// Any year within ±1,000,000 is accepted here; SPEC §5's 1900–2999
    /// range is checked by [`parse_date`] and [`excel_serial_date`].
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Option<Date> {
        if !(-1_000_000..=1_000_000).contains(&y)
            || !(1..=12).contains(&m)
            || d == 0
            || d > days_in_month(y, m)
        {
            return None;
        }
        let days = days_from_civil(i64::from(y), i64::from(m), i64::from(d));
        i32::try_from(days).ok().map(Date)
    }

    /// (year, month, day).
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(i64::from(self.0))
    }
}

/// `YYYY-MM-DD` (years outside 0–9999 are written with their sign and
/// digits as they are).
impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn is_leap(y: i32) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// [`civil_from_days`](ledgerline_core::calendar::civil_from_days) in the
/// types of [`Date::ymd`].
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let (y, m, d) = ledgerline_core::calendar::civil_from_days(z);
    // Every i32 day count is within ±5.9 million years: the casts are exact.
    (y as i32, m as u32, d as u32)
}

/// A date of SPEC §5's years.
fn date_in_range(y: i32, m: u32, d: u32) -> Option<Date> {
    if YEARS.contains(&y) {
        Date::from_ymd(y, m, d)
    } else {
        None
    }
}

/// A resolved order for A/B/YYYY: DateOrder::Dmy or DateOrder::Mdy (Auto is treated as Mdy).
/// Trimmed ASCII text; all forms of SPEC §5; year 1900–2999; real times and zone offsets.
///
/// - `YYYY-MM-DD`, optionally `T` or one space and `HH:MM[:SS[.f…]]`, then
///   optionally `Z` or `±HH:MM` (a zone only after a time);
/// - `YYYY/MM/DD`;
/// - `A/B/YYYY`, `A.B.YYYY`, `A-B-YYYY` (1–2 digit A and B, one separator),
///   optionally one space and `H:MM[:SS]`.
#[inline]
pub fn parse_date(text: &[u8], order: DateOrder) -> Option<Date> {
    // Nearly every date is exactly `YYYY-MM-DD` (or `YYYY/MM/DD`): read it
    // by position. Anything else takes the full grammar.
    if let [y0, y1, y2, y3, sep, m0, m1, sep2, d0, d1] = *text {
        if matches!(sep, b'-' | b'/') && sep2 == sep {
            // The eight digits as one word, first digit in the low byte.
            let w = u64::from_le_bytes([y0, y1, y2, y3, m0, m1, d0, d1]);
            const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
            const ZEROS: u64 = 0x3030_3030_3030_3030;
            // Every byte is 0x30..=0x3F, and adding 6 leaves it there
            // (its low nibble is at most 9): no carry crosses a byte.
            if w & HIGH == ZEROS && (w + 0x0606_0606_0606_0606) & HIGH == ZEROS {
                let d = w & 0x0F0F_0F0F_0F0F_0F0F;
                // Byte pairs to numbers: bytes 0, 2, 4, 6 hold 10a + b.
                let pairs = (d * 10 + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
                let pair = |k: u32| (pairs >> (16 * k)) as u32 & 0xFF;
                return ymd_in_range(pair(0) * 100 + pair(1), pair(2), pair(3));
            }
        }
    }
    parse_date_general(text, order)
}

/// [`date_in_range`] for the fast path: years of SPEC §5 only, so all
/// arithmetic is on small positive numbers.
#[inline]
fn ymd_in_range(y: u32, m: u32, d: u32) -> Option<Date> {
    if !(1900..=2999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    // y ≤ 2999: the cast is exact.
    if d > days_in_month(y as i32, m) {
        return None;
    }
    // days_from_civil with y ≥ 1899 after the March shift: no negative
    // division, and everything fits in i32.
    let y = (if m <= 2 { y - 1 } else { y }) as i32;
    let m = m as i32;
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(Date(era * 146_097 + doe - 719_468))
}

/// [`parse_date`] by the full grammar (out of line: rare).
#[inline(never)]
fn parse_date_general(text: &[u8], order: DateOrder) -> Option<Date> {
    let mut c = Cursor { b: text, i: 0 };
    if text.len() > 4 && text[..4].iter().all(u8::is_ascii_digit) && matches!(text[4], b'-' | b'/')
    {
        let year = c.number(4, 4)?;
        let sep = c.next()?;
        let month = c.number(2, 2)?;
        c.eat(sep).then_some(())?;
        let day = c.number(2, 2)?;
        if sep == b'-' && !c.at_end() {
            // `T` or one space, a time, then an optional zone.
            matches!(c.next()?, b'T' | b' ').then_some(())?;
            c.time(2, true)?;
            match c.next() {
                None => {}
                Some(b'Z') => {}
                Some(b'+' | b'-') => {
                    let hours = c.number(2, 2)?;
                    c.eat(b':').then_some(())?;
                    let minutes = c.number(2, 2)?;
                    (hours <= 23 && minutes <= 59).then_some(())?;
                }
                Some(_) => return None,
            }
        }
        c.at_end().then_some(())?;
        return date_in_range(i32::try_from(year).ok()?, month, day);
    }
    let shape = day_month_shape(&mut c)?;
    if !c.at_end() {
        c.eat(b' ').then_some(())?;
        c.time(1, false)?;
        c.at_end().then_some(())?;
    }
    let (day, month) = match order {
        DateOrder::Dmy => (shape.a, shape.b),
        DateOrder::Mdy | DateOrder::Auto => (shape.b, shape.a),
    };
    date_in_range(i32::try_from(shape.year).ok()?, month, day)
}

/// `A sep B sep YYYY`, read up to the year.
struct Shape {
    a: u32,
    b: u32,
    sep: u8,
    year: u32,
}

fn day_month_shape(c: &mut Cursor<'_>) -> Option<Shape> {
    let a = c.number(1, 2)?;
    let sep = c.next()?;
    matches!(sep, b'/' | b'.' | b'-').then_some(())?;
    let b = c.number(1, 2)?;
    c.eat(sep).then_some(())?;
    let year = c.number(4, 4)?;
    Some(Shape { a, b, sep, year })
}

/// A read position in ASCII text.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.i == self.b.len()
    }

    fn next(&mut self) -> Option<u8> {
        let b = *self.b.get(self.i)?;
        self.i += 1;
        Some(b)
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, want: u8) -> bool {
        if self.peek() == Some(want) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// `min..=max` ASCII digits, and no digit right after them.
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let mut n = 0u32;
        let mut len = 0;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            if len == max {
                return None;
            }
            n = n * 10 + u32::from(b - b'0');
            len += 1;
            self.i += 1;
        }
        (len >= min).then_some(n)
    }

    /// A real time of day: `H:MM[:SS]` with `hour_digits`..=2 hour digits,
    /// and `[.f…]` after the seconds when `fraction`.
    fn time(&mut self, hour_digits: usize, fraction: bool) -> Option<()> {
        let hours = self.number(hour_digits, 2)?;
        self.eat(b':').then_some(())?;
        let minutes = self.number(2, 2)?;
        let mut seconds = 0;
        if self.eat(b':') {
            seconds = self.number(2, 2)?;
            if fraction && self.eat(b'.') {
                self.number_any()?;
            }
        }
        (hours <= 23 && minutes <= 59 && seconds <= 59).then_some(())
    }

    /// One or more digits, any number.
    fn number_any(&mut self) -> Option<()> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        (self.i > start).then_some(())
    }
}

/// The `auto` vote of SPEC §5: feed the text of both date columns of each of the first
/// 1,000 non-blank records after the header (the caller counts records and skips the
/// values of ragged/unterminated/mis-encoded ones), then decide.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DateOrderVote {
    /// Some A above 12 was seen: only day-first reads it.
    a_over_12: bool,
    /// Some B above 12 was seen.
    b_over_12: bool,
    /// The separator of the first A/B/YYYY value seen.
    first_sep: Option<u8>,
}

impl DateOrderVote {
    /// Counts a value by its SHAPE (1–2 digits, sep, 1–2 digits, same sep, 4 digits,
    /// optional time), even when the date does not exist.
    ///
    /// The optional time is shaped like the one [`parse_date`] reads: one
    /// space and `H:MM[:SS]`, its digits not range-checked.
    pub fn observe(&mut self, text: &[u8]) {
        let mut c = Cursor { b: text, i: 0 };
        let Some(shape) = day_month_shape(&mut c) else {
            return;
        };
        if !c.at_end() {
            let time_shape = c.eat(b' ')
                && c.number(1, 2).is_some()
                && c.eat(b':')
                && c.number(2, 2).is_some()
                && (!c.eat(b':') || c.number(2, 2).is_some())
                && c.at_end();
            if !time_shape {
                return;
            }
        }
        self.a_over_12 |= shape.a > 12;
        self.b_over_12 |= shape.b > 12;
        self.first_sep.get_or_insert(shape.sep);
    }

    /// (Dmy or Mdy, ambiguous) — ambiguous = true means the warning `ambiguous_date_order`.
    pub fn decide(&self) -> (DateOrder, bool) {
        if self.a_over_12 {
            (DateOrder::Dmy, false)
        } else if self.b_over_12 {
            (DateOrder::Mdy, false)
        } else {
            match self.first_sep {
                Some(b'.') => (DateOrder::Dmy, true),
                Some(_) => (DateOrder::Mdy, true),
                None => (DateOrder::Mdy, false),
            }
        }
    }
}

/// An Excel serial date (1900 system with the leap-year bug: 1 = 1900-01-01, 59 = 1900-02-28,
/// 60 = None, 61 = 1900-03-01; 1904 system: 0 = 1904-01-01). The fraction is rounded to the
/// millisecond before the time is dropped. Negative or out-of-range → None.
///
/// Out of range means a year outside 1900–2999 (SPEC §5), so 0 in the 1900
/// system (Excel's "1900-01-00") is `None` too.
pub fn excel_serial_date(serial: Decimal, date1904: bool) -> Option<Date> {
    if serial.is_negative() {
        return None;
    }
    let Decimal { mantissa, scale } = serial;
    // |i64| × 86,400,000 < 2¹⁰⁰: no overflow; saturation cannot occur.
    let ms = round_scaled(i128::from(mantissa) * DAY_MS, u64::from(scale), 0);
    let day = ms / DAY_MS;
    // Days since 1970-01-01: 1904-01-01 is −24,107; serial 61 (1900-03-01)
    // is −25,508, so day n ≥ 61 is n − 25,569, and n in 1..=59 one later.
    let days = match (date1904, day) {
        (true, n) => n - 24_107,
        (false, 1..=59) => day - 25_568,
        (false, 61..) => day - 25_569,
        (false, _) => return None,
    };
    let date = Date(i32::try_from(days).ok()?);
    YEARS.contains(&date.ymd().0).then_some(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DateOrder::{Auto, Dmy, Mdy};

    fn ymd(y: i32, m: u32, d: u32) -> Option<Date> {
        Some(Date::from_ymd(y, m, d).unwrap())
    }

    fn p(text: &str) -> Option<Date> {
        parse_date(text.as_bytes(), Mdy)
    }

    #[test]
    fn fast_path_matches_general_on_every_day() {
        // Every year-month-day of 0000–9999 with month and day 00–39 (so
        // impossible dates too), both separators, against the full grammar.
        let mut buf = Vec::with_capacity(10);
        for y in (0..=9999).filter(|y| {
            // All years near the SPEC bounds and the century rules; a
            // sample elsewhere keeps the test quick.
            (1890..=1910).contains(y)
                || (2990..=3010).contains(y)
                || y % 100 == 0
                || y % 37 == 0
                || (1996..=2005).contains(y)
        }) {
            for m in 0..=39 {
                for d in 0..=39 {
                    for sep in ['-', '/'] {
                        buf.clear();
                        buf.extend_from_slice(format!("{y:04}{sep}{m:02}{sep}{d:02}").as_bytes());
                        for order in [Dmy, Mdy] {
                            assert_eq!(
                                parse_date(&buf, order),
                                parse_date_general(&buf, order),
                                "{y} {m} {d} {sep}"
                            );
                        }
                    }
                }
            }
        }
        // Every byte value in every digit position (the word-wide digit
        // test must refuse exactly the non-digits).
        for at in [0, 1, 2, 3, 5, 6, 8, 9] {
            for b in 0..=255u8 {
                let mut text = *b"2020-02-06";
                text[at] = b;
                for order in [Dmy, Mdy] {
                    assert_eq!(
                        parse_date(&text, order),
                        parse_date_general(&text, order),
                        "{text:?}"
                    );
                }
            }
        }
        // Ten-byte shapes the fast path must hand on (or reject the same).
        for text in [
            "2020-02/06",
            "2020/02-06",
            "2020-0a-06",
            "2020-02-0 ",
            "20x0-02-06",
            "1/2/2020 1",
            "01.02.2020",
            "01/02/2020",
            "01-02-2020",
            "2020.02.06",
            "+020-02-06",
            "2020-02-06",
        ] {
            for order in [Dmy, Mdy] {
                assert_eq!(
                    parse_date(text.as_bytes(), order),
                    parse_date_general(text.as_bytes(), order),
                    "{text}"
                );
            }
        }
        assert_eq!(p("2020-02-29"), ymd(2020, 2, 29));
        assert_eq!(p("1900-02-29"), None);
        assert_eq!(p("2000/02/29"), ymd(2000, 2, 29));
        assert_eq!(p("2999-12-31"), ymd(2999, 12, 31));
        assert_eq!(p("1900-01-01"), ymd(1900, 1, 1));
        assert_eq!(p("1899-12-31"), None);
    }

    #[test]
    fn day_numbers() {
        assert_eq!(Date::from_ymd(1970, 1, 1), Some(Date(0)));
        assert_eq!(Date::from_ymd(1969, 12, 31), Some(Date(-1)));
        assert_eq!(Date::from_ymd(2024, 2, 29), Some(Date(19_782)));
        assert_eq!(Date::from_ymd(1900, 1, 1), Some(Date(-25_567)));
        assert_eq!(Date::from_ymd(2999, 12, 31), Some(Date(376_199)));
        assert_eq!(Date::from_ymd(2023, 2, 29), None);
        assert_eq!(Date::from_ymd(1900, 2, 29), None);
        assert_eq!(
            Date::from_ymd(2000, 2, 29).map(Date::ymd),
            Some((2000, 2, 29))
        );
        assert_eq!(Date::from_ymd(2024, 4, 31), None);
        assert_eq!(Date::from_ymd(2024, 13, 1), None);
        assert_eq!(Date::from_ymd(2024, 0, 1), None);
        assert_eq!(Date::from_ymd(2024, 1, 0), None);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = Date(days).ymd();
            assert_eq!(Date::from_ymd(y, m, d), Some(Date(days)));
        }
        assert_eq!(Date(19_782).to_string(), "2024-02-29");
    }

    #[test]
    fn iso_forms() {
        let d = ymd(2024, 3, 5);
        assert_eq!(p("2024-03-05"), d);
        assert_eq!(p("2024/03/05"), d);
        assert_eq!(p("2024-03-05T10:30"), d);
        assert_eq!(p("2024-03-05 10:30"), d);
        assert_eq!(p("2024-03-05T10:30:59"), d);
        assert_eq!(p("2024-03-05T00:00:00.5"), d);
        assert_eq!(p("2024-03-05T23:59:59.123456789"), d);
        assert_eq!(p("2024-03-05T10:30Z"), d);
        assert_eq!(p("2024-03-05T10:30:00Z"), d);
        assert_eq!(p("2024-03-05T10:30:00.250+05:30"), d);
        assert_eq!(p("2024-03-05 23:00-23:59"), d);
        assert_eq!(p("2024-03-05T10:30:00+00:00"), d);
    }

    #[test]
    fn bad_iso_forms() {
        for bad in [
            "2024-03-05T24:00",
            "2024-03-05T23:60",
            "2024-03-05T23:59:60",
            "2024-03-05T1:30",
            "2024-03-05T10",
            "2024-03-05T10:3",
            "2024-03-05T10:30:",
            "2024-03-05T10:30:00.",
            "2024-03-05T10:30+24:00",
            "2024-03-05T10:30+05:60",
            "2024-03-05T10:30+0530",
            "2024-03-05T10:30+5:30",
            "2024-03-05T10:30+05",
            "2024-03-05T10:30z",
            "2024-03-05T10:30 Z",
            "2024-03-05Z",
            "2024-03-05+01:00",
            "2024-03-05t10:30",
            "2024-03-05  10:30",
            "2024-03-05T",
            "2024-03-05 ",
            "2024/03/05 10:30",
            "2024/03/05T10:30",
            "2024-03/05",
            "2024-1-05",
            "2024-01-5",
            "2024-001-05",
            "20240-01-05",
            "24-01-05",
            "2024-02-30",
            "2024-13-01",
            "2024-00-10",
            "",
            "2024",
            "2024-",
            "２０２４-01-05",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn calendar_and_years() {
        assert_eq!(p("2024-02-29"), ymd(2024, 2, 29));
        assert_eq!(p("2023-02-29"), None);
        assert_eq!(p("1900-02-29"), None);
        assert_eq!(p("2000-02-29"), ymd(2000, 2, 29));
        assert_eq!(p("1900-01-01"), ymd(1900, 1, 1));
        assert_eq!(p("2999-12-31"), ymd(2999, 12, 31));
        assert_eq!(p("1899-12-31"), None);
        assert_eq!(p("3000-01-01"), None);
        assert_eq!(p("31/12/1899"), None);
        assert_eq!(p("1/1/3000"), None);
    }

    #[test]
    fn day_month_forms() {
        assert_eq!(parse_date(b"05/03/2024", Dmy), ymd(2024, 3, 5));
        assert_eq!(parse_date(b"05/03/2024", Mdy), ymd(2024, 5, 3));
        assert_eq!(parse_date(b"05/03/2024", Auto), ymd(2024, 5, 3));
        assert_eq!(parse_date(b"5.3.2024", Dmy), ymd(2024, 3, 5));
        assert_eq!(parse_date(b"5-3-2024", Dmy), ymd(2024, 3, 5));
        assert_eq!(parse_date(b"5-3-2024", Mdy), ymd(2024, 5, 3));
        assert_eq!(parse_date(b"31/12/2024", Dmy), ymd(2024, 12, 31));
        assert_eq!(parse_date(b"31/12/2024", Mdy), None);
        assert_eq!(parse_date(b"12/31/2024", Mdy), ymd(2024, 12, 31));
        assert_eq!(parse_date(b"29/02/2023", Dmy), None);
        // Times: one space, H:MM[:SS].
        assert_eq!(parse_date(b"5/3/2024 9:05", Dmy), ymd(2024, 3, 5));
        assert_eq!(parse_date(b"5/3/2024 09:05:59", Dmy), ymd(2024, 3, 5));
        assert_eq!(parse_date(b"5/3/2024 23:59", Dmy), ymd(2024, 3, 5));
        for bad in [
            "5/3/2024 24:00",
            "5/3/2024 9:60",
            "5/3/2024 9:05:60",
            "5/3/2024 9:5",
            "5/3/2024 9",
            "5/3/2024T9:05",
            "5/3/2024  9:05",
            "5/3/2024 9:05:00.5",
            "5/3/2024 9:05Z",
            "5/3/2024 ",
            "5/3-2024",
            "5.3/2024",
            "05/03/24",
            "5/3/24",
            "005/03/2024",
            "5/003/2024",
            "5/3/02024",
            "/3/2024",
            "5//2024",
            "5 3 2024",
            "0/3/2024",
            "5/0/2024",
        ] {
            assert_eq!(parse_date(bad.as_bytes(), Dmy), None, "{bad:?}");
        }
    }

    fn vote(values: &[&str]) -> (DateOrder, bool) {
        let mut v = DateOrderVote::default();
        for value in values {
            v.observe(value.as_bytes());
        }
        v.decide()
    }

    #[test]
    fn date_order_vote() {
        assert_eq!(vote(&[]), (Mdy, false));
        assert_eq!(vote(&["2024-03-05", "nonsense", ""]), (Mdy, false));
        // A > 12 → dmy, whatever came before; it wins over B > 12.
        assert_eq!(vote(&["01/02/2024", "13/01/2024"]), (Dmy, false));
        assert_eq!(vote(&["01/13/2024", "13/01/2024"]), (Dmy, false));
        // B > 12 → mdy.
        assert_eq!(vote(&["1.2.2024", "01/13/2024"]), (Mdy, false));
        // Both ≤ 12: the first value's separator decides, with the warning.
        assert_eq!(vote(&["1.2.2024", "01/02/2024"]), (Dmy, true));
        assert_eq!(vote(&["01/02/2024", "1.2.2024"]), (Mdy, true));
        assert_eq!(vote(&["1-2-2024"]), (Mdy, true));
        // Shape counts, even for a date that does not exist.
        assert_eq!(vote(&["31/02/2024"]), (Dmy, false));
        assert_eq!(vote(&["02/31/2024"]), (Mdy, false));
        assert_eq!(vote(&["00.00.0000"]), (Dmy, true));
        // A time of the right shape is allowed, its values unchecked.
        assert_eq!(vote(&["13/01/2024 10:30"]), (Dmy, false));
        assert_eq!(vote(&["13/01/2024 99:99:99"]), (Dmy, false));
        // Not the shape: not counted.
        for other in [
            "13/01/24",
            "13/01-2024",
            "13/01/2024T10:30",
            "13/01/2024 10",
            "131/01/2024",
            "2024/01/13",
        ] {
            assert_eq!(vote(&[other]), (Mdy, false), "{other:?}");
        }
    }

    fn serial(text: &str, date1904: bool) -> Option<Date> {
        let s =
            crate::decimal::parse_decimal(text.as_bytes(), ledgerline_core::DecimalSeparator::Dot)
                .unwrap();
        excel_serial_date(s, date1904)
    }

    #[test]
    fn excel_serials() {
        assert_eq!(serial("1", false), ymd(1900, 1, 1));
        assert_eq!(serial("59", false), ymd(1900, 2, 28));
        assert_eq!(serial("60", false), None);
        assert_eq!(serial("60.5", false), None);
        assert_eq!(serial("61", false), ymd(1900, 3, 1));
        assert_eq!(serial("0", false), None);
        assert_eq!(serial("0.5", false), None);
        assert_eq!(serial("-1", false), None);
        assert_eq!(serial("45000", false), ymd(2023, 3, 15));
        assert_eq!(serial("45000.5", false), ymd(2023, 3, 15));
        assert_eq!(serial("45000.99999", false), ymd(2023, 3, 15));
        // 2.9999999999 days is 0.00864 ms short of day 3: rounds to day 3.
        assert_eq!(serial("2.9999999999", false), ymd(1900, 1, 3));
        assert_eq!(serial("2.99999999", false), ymd(1900, 1, 2));
        // 59.9999999999 rounds to the non-date 60.
        assert_eq!(serial("59.9999999999", false), None);
        // 401768 is 2999-12-31, 401769 is 3000-01-01.
        assert_eq!(serial("401768", false), ymd(2999, 12, 31));
        assert_eq!(serial("401769", false), None);
        assert_eq!(serial("999999999999999", false), None);
        // 1904 system.
        assert_eq!(serial("0", true), ymd(1904, 1, 1));
        assert_eq!(serial("1.5", true), ymd(1904, 1, 2));
        assert_eq!(serial("-0.5", true), None);
        assert_eq!(serial("43538", true), ymd(2023, 3, 15));
        // A huge scale is a tiny fraction of day 0.
        assert_eq!(
            excel_serial_date(
                Decimal {
                    mantissa: 1,
                    scale: 400
                },
                true
            ),
            ymd(1904, 1, 1)
        );
    }
}
