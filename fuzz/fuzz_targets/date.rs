//! Date parsing (SPEC §5, §10) against a slow, literal reading of the
//! grammar written here, on any bytes and both orders.
#![no_main]

use ledgerline_core::DateOrder;
use ledgerline_invoice::date::parse_date;
use libfuzzer_sys::fuzz_target;

fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    (s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn leap(y: u32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn real_date(y: u32, m: u32, d: u32) -> Option<(u32, u32, u32)> {
    let days = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    ((1900..=2999).contains(&y) && (1..=12).contains(&m) && d >= 1 && d <= days[m as usize - 1])
        .then_some((y, m, d))
}

/// `HH:MM[:SS[.f…]]` (year-first) or `H:MM[:SS]` (day-month forms).
fn time(s: &str, long: bool) -> bool {
    let (hms, frac) = match s.split_once('.') {
        Some((a, f)) if long => (a, Some(f)),
        Some(_) => return false,
        None => (s, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let h_min = if long { 2 } else { 1 };
    let ok = match parts.as_slice() {
        [h, m] => digits(h, h_min, 2).is_some_and(|h| h < 24) && digits(m, 2, 2).is_some_and(|m| m < 60),
        [h, m, sec] => {
            digits(h, h_min, 2).is_some_and(|h| h < 24)
                && digits(m, 2, 2).is_some_and(|m| m < 60)
                && digits(sec, 2, 2).is_some_and(|s| s < 60)
        }
        _ => false,
    };
    let frac_ok = match frac {
        None => true,
        Some(f) => parts.len() == 3 && !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()),
    };
    ok && frac_ok
}

/// A time, then optionally `Z` or `±HH:MM` with a real offset.
fn time_with_zone(s: &str) -> bool {
    if let Some(t) = s.strip_suffix('Z') {
        return time(t, true);
    }
    if s.len() > 6 {
        let (t, zone) = s.split_at(s.len() - 6);
        let zb = zone.as_bytes();
        if (zb[0] == b'+' || zb[0] == b'-') && zb[3] == b':' {
            let hh = digits(&zone[1..3], 2, 2);
            let mm = digits(&zone[4..6], 2, 2);
            if hh.is_some_and(|h| h < 24) && mm.is_some_and(|m| m < 60) && time(t, true) {
                return true;
            }
        }
    }
    time(s, true)
}

fn reference(text: &[u8], dmy: bool) -> Option<(u32, u32, u32)> {
    let s = std::str::from_utf8(text).ok()?;
    if !s.is_ascii() {
        return None;
    }
    // Year first: YYYY-MM-DD[(T| )time[zone]] or YYYY/MM/DD.
    if s.len() >= 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
        let (date, rest) = s.split_at(10);
        let y = digits(&date[0..4], 4, 4)?;
        let m = digits(&date[5..7], 2, 2)?;
        let d = digits(&date[8..10], 2, 2)?;
        if !rest.is_empty() {
            let t = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
            if !time_with_zone(t) {
                return None;
            }
        }
        return real_date(y, m, d);
    }
    if s.len() == 10 && s.as_bytes()[4] == b'/' && s.as_bytes()[7] == b'/' {
        return real_date(digits(&s[0..4], 4, 4)?, digits(&s[5..7], 2, 2)?, digits(&s[8..10], 2, 2)?);
    }
    // A?B?YYYY[ H:MM[:SS]] with one separator of / . -
    let (date, rest) = match s.split_once(' ') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    if let Some(t) = rest {
        if !time(t, false) {
            return None;
        }
    }
    for sep in ['/', '.', '-'] {
        let parts: Vec<&str> = date.split(sep).collect();
        if let [a, b, y] = parts.as_slice() {
            let a = digits(a, 1, 2)?;
            let b = digits(b, 1, 2)?;
            let y = digits(y, 4, 4)?;
            let (d, m) = if dmy { (a, b) } else { (b, a) };
            return real_date(y, m, d);
        }
    }
    None
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, text)) = input.split_first() else {
        return;
    };
    let dmy = selector % 2 == 1;
    let order = if dmy { DateOrder::Dmy } else { DateOrder::Mdy };
    let got = parse_date(text, order).map(|d| d.ymd());
    let want = reference(text, dmy).map(|(y, m, d)| (y as i32, m, d));
    assert_eq!(got, want, "{:?} ({})", String::from_utf8_lossy(text), if dmy { "dmy" } else { "mdy" });
});
