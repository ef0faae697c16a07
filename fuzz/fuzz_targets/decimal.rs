//! Decimal parsing (SPEC §6, §10) against a slow, literal reading of the
//! grammar written here, on any bytes and both separators.
#![no_main]

use ledgerline_core::DecimalSeparator;
use ledgerline_invoice::decimal::parse_decimal;
use libfuzzer_sys::fuzz_target;

/// (negative, significant digits as written without leading zeros, scale)
/// of a valid text; `None` when invalid.
fn reference(text: &[u8], comma: bool) -> Option<(bool, String, usize)> {
    let s = std::str::from_utf8(text).ok()?;
    let (negative, body) = if let Some(inner) = s.strip_prefix('(') {
        (true, inner.strip_suffix(')')?)
    } else if let Some(rest) = s.strip_prefix('-') {
        (true, rest)
    } else if let Some(rest) = s.strip_prefix('+') {
        (false, rest)
    } else {
        (false, s)
    };
    let point = if comma { ',' } else { '.' };
    let (int, frac) = match body.split_once(point) {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if let Some(f) = frac {
        if f.is_empty() || !f.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    // Grouping: one kind of group separator per number.
    let groupers: &[&str] = if comma { &[".", " ", "\u{a0}"] } else { &[","] };
    let mut digits = String::new();
    let mut grouped = false;
    for g in groupers {
        if int.contains(g) {
            if grouped {
                return None;
            }
            grouped = true;
            let parts: Vec<&str> = int.split(g).collect();
            let first = parts[0];
            if first.is_empty() || first.len() > 3 || !first.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            for p in &parts[1..] {
                if p.len() != 3 || !p.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
            }
            digits = parts.concat();
        }
    }
    if !grouped {
        if int.is_empty() || !int.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits = int.to_string();
    }
    let frac = frac.unwrap_or("");
    let all = format!("{digits}{frac}");
    let significant = all.trim_start_matches('0').to_string();
    if significant.len() > 15 {
        return None;
    }
    Some((negative, significant, frac.len()))
}

fuzz_target!(|input: &[u8]| {
    let Some((&selector, text)) = input.split_first() else {
        return;
    };
    let comma = selector % 2 == 1;
    let sep = if comma { DecimalSeparator::Comma } else { DecimalSeparator::Dot };
    let got = parse_decimal(text, sep);
    let want = reference(text, comma);
    match (got, want) {
        (None, None) => {}
        (Some(d), Some((negative, significant, scale))) => {
            if significant.is_empty() {
                assert!(d.is_zero(), "{:?}: {d:?}", String::from_utf8_lossy(text));
            } else {
                assert_eq!(d.is_negative(), negative, "{:?}", String::from_utf8_lossy(text));
                assert_eq!(d.mantissa.unsigned_abs().to_string(), significant, "{:?}", String::from_utf8_lossy(text));
                assert_eq!(d.scale as usize, scale, "{:?}", String::from_utf8_lossy(text));
            }
        }
        (got, want) => panic!("{:?}: parsed {got:?}, reference {want:?}", String::from_utf8_lossy(text)),
    }
});
