//! Exact decimals (SPEC §6) and the per-line money arithmetic of SPEC §4 and §7.
//!
//! A parsed [`Decimal`] has at most 15 significant digits but any scale, so a
//! value like `0.` followed by forty zeros and `1` is a valid quantity. Every
//! result here is exact for every value [`parse_decimal`] accepts:
//!
//! - the common case runs on `i128` with checked operations;
//! - anything that would overflow falls back to 256-bit integers
//!   ([`ethnum::I256`]), where a product of three decimals always fits
//!   (`|i64|³ < 2²⁵⁵`);
//! - when scales are huge, a term far below the rounding grid is replaced by
//!   a *sticky* epsilon of the same sign, which provably rounds the same way
//!   (see `round_sum`), so no power of ten above `10⁷⁷` is ever needed.

use std::cmp::Ordering;

use ethnum::{I256, U256};
use ledgerline_core::DecimalSeparator;

/// The most significant digits a decimal may have (SPEC §6).
pub const MAX_SIGNIFICANT_DIGITS: u32 = 15;

/// The largest scale [`parse_decimal`] accepts. No real field is a gigabyte
/// long; the bound keeps [`Decimal::percent`] exact for every parsed value.
const MAX_SCALE: usize = 1 << 30;

/// `10ⁿ` for `n` in `0..=38`: every power of ten that fits in `i128`.
const POW10: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < t.len() {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `10ⁿ` for `n` in `0..=19`: every power of ten that fits in `u64`.
const POW10_U64: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < t.len() {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// An exact decimal: value = mantissa × 10^-scale. At most 15 significant digits, so
/// |mantissa| < 10^15; scale may be large (`0.000…001` is valid: leading zeros don't count).
///
/// The representation keeps trailing zeros (`1.50` is `150 × 10⁻²`), so the
/// derived `==` compares representations; use [`Decimal::cmp_value`] to
/// compare values. A parsed zero is always [`Decimal::ZERO`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Decimal {
    /// The digits, with the sign.
    pub mantissa: i64,
    /// How many of the digits are behind the decimal point.
    pub scale: u32,
}

impl Decimal {
    /// `0`.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };
    /// `1`.
    pub const ONE: Decimal = Decimal {
        mantissa: 1,
        scale: 0,
    };

    /// Whether the value is zero.
    #[inline]
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// Whether the value is below zero (`-0` is not).
    #[inline]
    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// Exact comparison of values (1.50 == 1.5).
    pub fn cmp_value(self, other: Decimal) -> Ordering {
        let (a, b) = (i128::from(self.mantissa), i128::from(other.mantissa));
        // |i64| × 10¹⁹ < 2¹²⁷, so aligning across up to 19 digits stays in i128.
        match self.scale.cmp(&other.scale) {
            Ordering::Equal => return a.cmp(&b),
            Ordering::Less if other.scale - self.scale <= 19 => {
                return (a * POW10[(other.scale - self.scale) as usize] as i128).cmp(&b)
            }
            Ordering::Greater if self.scale - other.scale <= 19 => {
                return a.cmp(&(b * POW10[(self.scale - other.scale) as usize] as i128))
            }
            _ => {}
        }
        sign_of_sum(&mut [
            (I256::from(self.mantissa), u64::from(self.scale)),
            (-I256::from(other.mantissa), u64::from(other.scale)),
        ])
    }

    /// Exact division by 100 (for `%` tax rates).
    ///
    /// Exact for every scale up to `u32::MAX - 2`, which covers every parsed
    /// value; beyond that the scale saturates.
    pub fn percent(self) -> Decimal {
        match self.scale.checked_add(2) {
            Some(scale) => Decimal {
                mantissa: self.mantissa,
                scale,
            },
            None => Decimal {
                mantissa: self.mantissa / 100,
                scale: self.scale,
            },
        }
    }
}

/// SPEC §6 text grammar on already-trimmed ASCII bytes: [+|-]digits[.digits] or
/// (digits[.digits]); grouping per separator (Dot: ',' groups, first group 1–3 digits then
/// exactly 3; Comma: fraction ',' and one of '.', ' ', U+00A0 (UTF-8 C2 A0) groups — one
/// kind per number); digits required on both sides of the separator; no exponent, no
/// spaces inside, ASCII digits only; at most 15 significant digits (leading zeros not
/// counted, trailing zeros counted; a zero has none). None when invalid.
#[inline]
pub fn parse_decimal(text: &[u8], sep: DecimalSeparator) -> Option<Decimal> {
    let point = match sep {
        DecimalSeparator::Dot => b'.',
        DecimalSeparator::Comma => b',',
    };
    // Nearly every field is `-?digits[.digits]` with at most 15 digits:
    // one pass straight into the mantissa. Anything else (and every
    // invalid text) takes the full grammar below.
    match parse_plain(text, point) {
        Some(d) => Some(d),
        None => parse_decimal_general(text, sep),
    }
}

/// The common shape `-?D+(.D+)?` with at most 15 digits, where `.` is
/// `point`; `None` for anything else, valid or not.
#[inline(always)]
fn parse_plain(text: &[u8], point: u8) -> Option<Decimal> {
    let (negative, body) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    // 15 digits and a point at most: no digit count can pass 15 below.
    if body.is_empty() || body.len() > MAX_SIGNIFICANT_DIGITS as usize + 1 {
        return None;
    }
    // The integer digits, then (after the point) the fraction digits.
    let mut mantissa = 0i64;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        let d = b.wrapping_sub(b'0');
        if d >= 10 {
            break;
        }
        // At most 16 digits here: below 10¹⁶, no overflow.
        mantissa = mantissa * 10 + i64::from(d);
        i += 1;
    }
    let scale = if i == body.len() {
        // 16 digits without a point: too many, or leading zeros the
        // general path counts properly.
        if body.len() > MAX_SIGNIFICANT_DIGITS as usize {
            return None;
        }
        0
    } else {
        // Digits are required on both sides of the point.
        if body[i] != point || i == 0 || i + 1 == body.len() {
            return None;
        }
        for &b in &body[i + 1..] {
            let d = b.wrapping_sub(b'0');
            if d >= 10 {
                return None;
            }
            mantissa = mantissa * 10 + i64::from(d);
        }
        body.len() - i - 1
    };
    if mantissa == 0 {
        return Some(Decimal::ZERO);
    }
    Some(Decimal {
        mantissa: if negative { -mantissa } else { mantissa },
        // scale ≤ 15.
        scale: scale as u32,
    })
}

/// [`parse_decimal`] by the full grammar (out of line: rare).
#[inline(never)]
fn parse_decimal_general(text: &[u8], sep: DecimalSeparator) -> Option<Decimal> {
    let (negative, body) = match text {
        [b'(', inner @ .., b')'] => (true, inner),
        [b'+', rest @ ..] => (false, rest),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    let point = match sep {
        DecimalSeparator::Dot => b'.',
        DecimalSeparator::Comma => b',',
    };
    let mut digits = Digits::default();
    let mut i = 0;
    // Grouping: the kind of the first separator, how many were seen, and the
    // digits since the last one.
    let mut group_kind: Option<u8> = None;
    let mut groups = 0usize;
    let mut run = 0usize;
    while let Some(&b) = body.get(i) {
        if b.is_ascii_digit() {
            digits.push(b)?;
            run += 1;
            i += 1;
            continue;
        }
        if b == point {
            break;
        }
        let (kind, len) = group_separator(&body[i..], sep)?;
        let bad_group = if groups == 0 {
            run == 0 || run > 3
        } else {
            run != 3
        };
        if bad_group || group_kind.is_some_and(|k| k != kind) {
            return None;
        }
        group_kind = Some(kind);
        groups += 1;
        run = 0;
        i += len;
    }
    // Digits are required before the point, and the last group has 3.
    if run == 0 || (groups > 0 && run != 3) {
        return None;
    }
    let mut scale = 0;
    if i < body.len() {
        let fraction = &body[i + 1..];
        if fraction.is_empty() {
            return None;
        }
        for &b in fraction {
            if !b.is_ascii_digit() {
                return None;
            }
            digits.push(b)?;
        }
        scale = fraction.len();
    }
    digits.finish(negative, scale)
}

/// A group separator at the start of `rest`: (kind, length in bytes).
fn group_separator(rest: &[u8], sep: DecimalSeparator) -> Option<(u8, usize)> {
    match (sep, rest) {
        (DecimalSeparator::Dot, [b',', ..]) => Some((b',', 1)),
        (DecimalSeparator::Comma, [b'.', ..]) => Some((b'.', 1)),
        (DecimalSeparator::Comma, [b' ', ..]) => Some((b' ', 1)),
        // U+00A0 NO-BREAK SPACE in UTF-8.
        (DecimalSeparator::Comma, [0xC2, 0xA0, ..]) => Some((0xA0, 2)),
        _ => None,
    }
}

/// Accumulates the digits of a number, counting significant ones.
#[derive(Default)]
struct Digits {
    mantissa: i64,
    significant: u32,
}

impl Digits {
    /// Adds one ASCII digit; `None` past 15 significant digits.
    #[inline]
    fn push(&mut self, b: u8) -> Option<()> {
        let d = i64::from(b - b'0');
        if self.significant == 0 && d == 0 {
            // A leading zero: not significant, and it does not change the mantissa.
            return Some(());
        }
        self.significant += 1;
        if self.significant > MAX_SIGNIFICANT_DIGITS {
            return None;
        }
        // At most 15 digits: no overflow.
        self.mantissa = self.mantissa * 10 + d;
        Some(())
    }

    fn finish(self, negative: bool, scale: usize) -> Option<Decimal> {
        if self.mantissa == 0 {
            return Some(Decimal::ZERO);
        }
        if scale > MAX_SCALE {
            return None;
        }
        Some(Decimal {
            mantissa: if negative {
                -self.mantissa
            } else {
                self.mantissa
            },
            scale: u32::try_from(scale).ok()?,
        })
    }
}

/// Per-line amounts in minor units (integers), each round half away from zero to `minor`
/// digits: net = round(q×p), tax = round(q×p×t), expected = round(q×p×(1+t)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LineAmounts {
    /// round(quantity × unit_price).
    pub net: i128,
    /// round(quantity × unit_price × tax_rate).
    pub tax: i128,
    /// round(quantity × unit_price × (1 + tax_rate)) — not `net + tax`.
    pub expected: i128,
}

/// The amounts of one line (SPEC §4, §7).
///
/// Exact for all inputs; a result that does not fit in `i128` saturates
/// (with SPEC inputs — 15 digits, `tax_rate` in [0, 1], at most 4 minor
/// digits — every result is below 10³⁵).
pub fn line_amounts(
    quantity: Decimal,
    unit_price: Decimal,
    tax_rate: Decimal,
    minor: u32,
) -> LineAmounts {
    if let Some(amounts) = line_amounts_i64(quantity, unit_price, tax_rate, minor) {
        return amounts;
    }
    // |i64 × i64| < 2¹²⁶: the net product always fits in i128.
    let a_m = i128::from(quantity.mantissa) * i128::from(unit_price.mantissa);
    let a_s = u64::from(quantity.scale) + u64::from(unit_price.scale);
    let t_s = u64::from(tax_rate.scale);
    if let Some(amounts) = line_amounts_small(a_m, a_s, tax_rate.mantissa, t_s, minor) {
        return amounts;
    }
    let a = Wide {
        m: I256::from(a_m),
        s: a_s,
    };
    // |i64|³ < 2¹⁸⁹: the tax product always fits in I256.
    let b = Wide {
        m: a.m * I256::from(tax_rate.mantissa),
        s: a_s + t_s,
    };
    LineAmounts {
        net: round_wide(a, minor),
        tax: round_wide(b, minor),
        expected: round_sum(a, b, minor),
    }
}

/// [`line_amounts`] in `i64`, the usual case (a few digits each, small
/// scales); `None` when anything would overflow.
#[inline]
fn line_amounts_i64(q: Decimal, p: Decimal, t: Decimal, minor: u32) -> Option<LineAmounts> {
    let a_m = q.mantissa.checked_mul(p.mantissa)?;
    let a_s = q.scale.checked_add(p.scale)?;
    let b_m = a_m.checked_mul(t.mantissa)?;
    let b_s = a_s.checked_add(t.scale)?;
    // q×p×(1+t) = (a_m × 10^t_s + b_m) × 10^-(a_s + t_s).
    let x_m = a_m
        .checked_mul(i64::try_from(*POW10_U64.get(t.scale as usize)?).ok()?)?
        .checked_add(b_m)?;
    Some(LineAmounts {
        net: round_i64(a_m, a_s, minor)?,
        tax: round_i64(b_m, b_s, minor)?,
        expected: round_i64(x_m, b_s, minor)?,
    })
}

/// round(m × 10^-s) to `minor` digits in minor units, half away from zero,
/// in 64-bit arithmetic; `None` when a power of ten above 10¹⁹ is needed.
#[inline]
fn round_i64(m: i64, s: u32, minor: u32) -> Option<i128> {
    if s <= minor {
        // |i64| × 10¹⁹ < 2¹²⁷: the product fits.
        let p = *POW10_U64.get((minor - s) as usize)?;
        return Some(i128::from(m) * i128::from(p));
    }
    let p = *POW10_U64.get((s - minor) as usize)?;
    let mag = m.unsigned_abs();
    let (q, r) = (mag / p, mag % p);
    // Half away from zero: round the magnitude half up. p ≥ 10, so q + 1
    // cannot overflow.
    let q = i128::from(if r >= p - r { q + 1 } else { q });
    Some(if m < 0 { -q } else { q })
}

/// [`line_amounts`] in `i128`; `None` when anything would overflow.
#[inline]
fn line_amounts_small(a_m: i128, a_s: u64, t_m: i64, t_s: u64, minor: u32) -> Option<LineAmounts> {
    let b_m = a_m.checked_mul(i128::from(t_m))?;
    let b_s = a_s + t_s;
    // q×p×(1+t) = (a_m × 10^t_s + b_m) × 10^-(a_s + t_s).
    let x_m = a_m
        .checked_mul(*POW10.get(usize::try_from(t_s).ok()?)? as i128)?
        .checked_add(b_m)?;
    Some(LineAmounts {
        net: round_small(a_m, a_s, minor)?,
        tax: round_small(b_m, b_s, minor)?,
        expected: round_small(x_m, b_s, minor)?,
    })
}

/// round(d) to `minor` digits in minor units, half away from zero.
///
/// Exact; saturates when the result does not fit in `i128`.
pub fn round_to_minor(d: Decimal, minor: u32) -> i128 {
    if let Some(r) = round_i64(d.mantissa, d.scale, minor) {
        return r;
    }
    round_scaled(i128::from(d.mantissa), u64::from(d.scale), minor)
}

/// round(m × 10^-s) to `minor` digits in minor units, half away from zero;
/// saturates when the result does not fit in `i128`.
pub(crate) fn round_scaled(m: i128, s: u64, minor: u32) -> i128 {
    round_small(m, s, minor).unwrap_or_else(|| {
        round_wide(
            Wide {
                m: I256::from(m),
                s,
            },
            minor,
        )
    })
}

/// |line_total − expected/10^minor| > tolerance, exactly (line_total unrounded).
pub fn exceeds_tolerance(
    line_total: Decimal,
    expected_minor: i128,
    minor: u32,
    tolerance: Decimal,
) -> bool {
    let (l_s, t_s) = (u64::from(line_total.scale), u64::from(tolerance.scale));
    let m_s = u64::from(minor);
    let s = l_s.max(t_s).max(m_s);
    // Fast path: align the three values on one scale in i128. |i64| × 10¹⁸
    // fits; the expected amount may be large, so that product is checked.
    if s <= 18 {
        // Usually everything fits in i64.
        let align64 = |m: i64, from: u64| m.checked_mul(POW10_U64[(s - from) as usize] as i64);
        let l = align64(line_total.mantissa, l_s);
        let e = i64::try_from(expected_minor)
            .ok()
            .and_then(|e| align64(e, m_s));
        let t = align64(tolerance.mantissa, t_s);
        if let (Some(l), Some(e), Some(t)) = (l, e, t) {
            if let Some(diff) = l.checked_sub(e) {
                return diff.unsigned_abs() > t.unsigned_abs() || t < 0;
            }
        }
        let align = |m: i128, from: u64| m.checked_mul(POW10[(s - from) as usize] as i128);
        let l = align(i128::from(line_total.mantissa), l_s);
        let e = align(expected_minor, m_s);
        let t = align(i128::from(tolerance.mantissa), t_s);
        if let (Some(l), Some(e), Some(t)) = (l, e, t) {
            if let Some(diff) = l.checked_sub(e) {
                // |diff| > t, with t read as written even if negative.
                return diff.unsigned_abs() > t.unsigned_abs() || t < 0;
            }
        }
    }
    exceeds_tolerance_wide(
        (line_total.mantissa, l_s),
        (expected_minor, m_s),
        (tolerance.mantissa, t_s),
    )
}

/// [`exceeds_tolerance`] in 256-bit arithmetic, for every input: the line
/// total, the expected amount and the tolerance as (mantissa, scale).
fn exceeds_tolerance_wide(l: (i64, u64), e: (i128, u64), t: (i64, u64)) -> bool {
    // |d| > t  ⇔  d − t > 0  or  −d − t > 0.
    let l = (I256::from(l.0), l.1);
    let e = (I256::from(e.0), e.1);
    let t = (I256::from(t.0), t.1);
    sign_of_sum(&mut [l, (-e.0, e.1), (-t.0, t.1)]) == Ordering::Greater
        || sign_of_sum(&mut [(-l.0, l.1), e, (-t.0, t.1)]) == Ordering::Greater
}

/// An amount of minor units as text with exactly `minor` fraction digits:
/// 123450,2 → "1234.50"; 1234,0 → "1234"; -5,2 → "-0.05"; 0 → "0.00" (no sign).
pub fn format_minor(amount: I256, minor: u32) -> String {
    let digits = amount.unsigned_abs().to_string();
    let minor = minor as usize;
    let mut out = String::with_capacity(digits.len() + minor + 3);
    if amount < 0 {
        out.push('-');
    }
    if digits.len() > minor {
        let (int, frac) = digits.split_at(digits.len() - minor);
        out.push_str(int);
        if minor > 0 {
            out.push('.');
            out.push_str(frac);
        }
    } else {
        out.push('0');
        if minor > 0 {
            out.push('.');
            out.extend(std::iter::repeat_n('0', minor - digits.len()));
            out.push_str(&digits);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Rounding.

/// An exact value `m × 10^-s` with a 256-bit mantissa.
#[derive(Clone, Copy, Debug)]
struct Wide {
    m: I256,
    s: u64,
}

/// round(m × 10^-s) to `minor` digits in `i128`; `None` when that would
/// overflow (or needs a power of ten above 10³⁸).
#[inline]
fn round_small(m: i128, s: u64, minor: u32) -> Option<i128> {
    let minor = u64::from(minor);
    if s <= minor {
        let p = *POW10.get(usize::try_from(minor - s).ok()?)?;
        return m.checked_mul(p as i128);
    }
    let k = s - minor;
    if k >= 39 {
        // |m| ≤ 2¹²⁷ < 1.8 × 10³⁸, so |m| / 10³⁹ < 0.18 rounds to zero.
        return Some(0);
    }
    let p = POW10[k as usize];
    let mag = m.unsigned_abs();
    let (q, r) = match (u64::try_from(mag), u64::try_from(p)) {
        // 64-bit division is several times faster than 128-bit.
        (Ok(mag), Ok(p)) => (u128::from(mag / p), u128::from(mag % p)),
        _ => (mag / p, mag % p),
    };
    // Half away from zero: round the magnitude half up. p ≥ 10, so q + 1
    // and the cast below cannot overflow.
    let q = if r >= p - r { q + 1 } else { q } as i128;
    Some(if m < 0 { -q } else { q })
}

/// `10ⁿ` as a U256, for `n` in `0..=77` (10⁷⁷ < 2²⁵⁶ < 10⁷⁸).
fn pow10_u256(n: u64) -> Option<U256> {
    let n = usize::try_from(n).ok()?;
    match n {
        0..=38 => Some(U256::new(POW10[n])),
        39..=77 => U256::new(POW10[38]).checked_mul(U256::new(POW10[n - 38])),
        _ => None,
    }
}

/// `10ⁿ` as an I256, for `n` in `0..=76`.
fn pow10_i256(n: u64) -> Option<I256> {
    pow10_u256(n).and_then(|p| I256::try_from(p).ok())
}

/// round(x) to `minor` digits in minor units, half away from zero;
/// saturates outside `i128`.
fn round_wide(x: Wide, minor: u32) -> i128 {
    let minor = u64::from(minor);
    let negative = x.m < 0;
    let mag = x.m.unsigned_abs();
    let q = if x.s <= minor {
        match pow10_u256(minor - x.s).and_then(|p| mag.checked_mul(p)) {
            Some(q) => q,
            None if mag == 0 => U256::ZERO,
            None => return saturate(negative),
        }
    } else {
        match pow10_u256(x.s - minor) {
            // |m| ≤ 2²⁵⁵ < 5.8 × 10⁷⁶, so |m| / 10⁷⁸ < 0.06 rounds to zero.
            None => return 0,
            Some(p) => {
                let (q, r) = (mag / p, mag % p);
                if r >= p - r {
                    q + 1
                } else {
                    q
                }
            }
        }
    };
    match i128::try_from(q) {
        Ok(v) if negative => -v,
        Ok(v) => v,
        Err(_) if negative && q == U256::new(1u128 << 127) => i128::MIN,
        Err(_) => saturate(negative),
    }
}

fn saturate(negative: bool) -> i128 {
    if negative {
        i128::MIN
    } else {
        i128::MAX
    }
}

/// round(a + b) to `minor` digits, exactly, for mantissas below 2²⁰⁰.
///
/// Aligning `a` and `b` on one scale can need far more than 256 bits when
/// one scale is huge (a tax rate of `0.000…0001` with 60 zeros). Instead:
/// let `a` be the term with the smaller scale and `g = max(scale(a), minor +
/// 1)`. Then `a` and every rounding boundary `(k + ½) × 10^-minor` lie on the
/// grid `10^-g`. Truncate `b` toward zero onto that grid: `b = bt + r` with
/// `|r| < 10^-g` and `r` of the sign of `b` (or zero). `y = a + bt` is a grid
/// point, and `y + r` lies strictly between `y` and its neighbour on the side
/// of `r`, where no boundary is; so `a + b` rounds like `y + sign(r) ×
/// 10^-(g+1)`, which needs only `g + 1` digits of scale.
fn round_sum(a: Wide, b: Wide, minor: u32) -> i128 {
    let (a, b) = if a.s <= b.s { (a, b) } else { (b, a) };
    let g = a.s.max(u64::from(minor) + 1);
    let (bt, sticky) = if b.s <= g {
        match pow10_i256(g - b.s).and_then(|p| b.m.checked_mul(p)) {
            Some(bt) => (bt, I256::ZERO),
            None => return saturate_sum(a, b),
        }
    } else {
        let sign = I256::from(b.m.signum128());
        match pow10_u256(b.s - g) {
            // |b.m| < 10⁷⁸: nothing of b is left on the grid.
            None => (I256::ZERO, sign),
            Some(p) => {
                let mag = b.m.unsigned_abs();
                let (q, r) = (mag / p, mag % p);
                let Ok(q) = I256::try_from(q) else {
                    return saturate_sum(a, b);
                };
                let q = if b.m < 0 { -q } else { q };
                (q, if r == U256::ZERO { I256::ZERO } else { sign })
            }
        }
    };
    // Everything on scale g + 1: a × 10^(g+1−a.s) + bt × 10 + sticky.
    let m = pow10_i256(g + 1 - a.s)
        .and_then(|p| a.m.checked_mul(p))
        .and_then(|x| {
            bt.checked_mul(I256::from(10u8))
                .and_then(|y| x.checked_add(y))
        })
        .and_then(|x| x.checked_add(sticky));
    match m {
        Some(m) => round_wide(Wide { m, s: g + 1 }, minor),
        None => saturate_sum(a, b),
    }
}

/// The saturated result for a sum too large for any `i128` result.
fn saturate_sum(a: Wide, b: Wide) -> i128 {
    match sign_of_sum(&mut [(a.m, a.s), (b.m, b.s)]) {
        Ordering::Less => i128::MIN,
        Ordering::Equal => 0,
        Ordering::Greater => i128::MAX,
    }
}

/// The sign of `Σ mᵢ × 10^-sᵢ`, exactly, for a few terms with `|mᵢ| < 2²⁰⁰`.
///
/// Terms are added from the smallest scale up. When aligning the partial sum
/// to the next scale overflows, its magnitude is at least 2²⁵⁵ units of that
/// scale, while the remaining terms together are below `n × 2²⁰⁰` such units
/// (their scales are no smaller): the partial sum's sign is the answer.
fn sign_of_sum(terms: &mut [(I256, u64)]) -> Ordering {
    terms.sort_unstable_by_key(|t| t.1);
    let mut acc = I256::ZERO;
    let mut acc_s = 0u64;
    for &(m, s) in terms.iter() {
        if m == 0 {
            continue;
        }
        if acc == 0 {
            (acc, acc_s) = (m, s);
            continue;
        }
        let Some(aligned) = pow10_i256(s - acc_s).and_then(|p| acc.checked_mul(p)) else {
            return acc.cmp(&I256::ZERO);
        };
        match aligned.checked_add(m) {
            Some(v) => (acc, acc_s) = (v, s),
            None => return aligned.cmp(&I256::ZERO),
        }
    }
    acc.cmp(&I256::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DecimalSeparator::{Comma, Dot};

    /// A small deterministic generator (xorshift64), for seeded random inputs.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// The fast path agrees with the full grammar on `text`, both separators.
    fn check_plain(text: &[u8]) {
        for sep in [Dot, Comma] {
            let general = parse_decimal_general(text, sep);
            assert_eq!(parse_decimal(text, sep), general, "{text:?} {sep:?}");
            let point = if sep == Dot { b'.' } else { b',' };
            if let Some(fast) = parse_plain(text, point) {
                assert_eq!(Some(fast), general, "{text:?} {sep:?}");
            }
        }
    }

    #[test]
    fn plain_path_matches_general_exhaustively() {
        // Every string of up to 5 bytes over an alphabet with every byte the
        // grammar gives a meaning to.
        let alphabet = b"0019.,-+() x";
        let mut buf = Vec::new();
        for len in 0..=5u32 {
            for mut code in 0..(alphabet.len() as u64).pow(len) {
                buf.clear();
                for _ in 0..len {
                    buf.push(alphabet[(code % alphabet.len() as u64) as usize]);
                    code /= alphabet.len() as u64;
                }
                check_plain(&buf);
            }
        }
    }

    #[test]
    fn plain_path_matches_general_on_long_numbers() {
        // Lengths around the 15-digit limit, with leading zeros, signs and
        // points anywhere.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"00123456789.,-";
        let mut buf = Vec::new();
        for _ in 0..200_000 {
            buf.clear();
            let len = 1 + rng.below(22) as usize;
            for _ in 0..len {
                // Mostly digits, so that many inputs are valid.
                let k = if rng.below(4) == 0 {
                    alphabet.len()
                } else {
                    11
                };
                buf.push(alphabet[rng.below(k as u64) as usize]);
            }
            check_plain(&buf);
        }
        for text in [
            "999999999999999",
            "-999999999999999",
            "9999999999999999",
            "0000000000000001",
            "000000000000000",
            "0000000000000000",
            "99999999999999.9",
            "0.00000000000001",
            "-0",
            "-0.000",
            "12.",
            ".5",
            "-",
        ] {
            check_plain(text.as_bytes());
        }
    }

    fn d(text: &str) -> Decimal {
        parse_decimal(text.as_bytes(), Dot).unwrap()
    }

    fn dec(mantissa: i64, scale: u32) -> Decimal {
        Decimal { mantissa, scale }
    }

    /// `0.` followed by `zeros` zeros and then `digits`.
    fn tiny(zeros: usize, digits: &str) -> String {
        format!("0.{}{digits}", "0".repeat(zeros))
    }

    #[test]
    fn parses_plain_numbers() {
        assert_eq!(d("12.50"), dec(1250, 2));
        assert_eq!(d("+5"), dec(5, 0));
        assert_eq!(d("-7.25"), dec(-725, 2));
        assert_eq!(d("(12.50)"), dec(-1250, 2));
        assert_eq!(d("007"), dec(7, 0));
        assert_eq!(d("100"), dec(100, 0));
        assert_eq!(d("0.0010"), dec(10, 4));
    }

    #[test]
    fn zeros_are_zero() {
        for z in ["0", "-0", "+0", "(0)", "0.00", "000.000", "-0.0"] {
            let v = d(z);
            assert!(v.is_zero() && !v.is_negative(), "{z}");
            assert_eq!(v, Decimal::ZERO, "{z}");
        }
        // A zero has no significant digits, however many zeros it has.
        assert_eq!(d(&tiny(200, "0")), Decimal::ZERO);
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "-", "+", "()", ".5", "5.", "-.5", "1e5", "1E5", "1 000", " 1", "1 ", "1..2",
            "1.2.3", "(12.50", "12.50)", "(-5)", "-(5)", "+-5", "--5", "٣", "1٣", "0x10", "$5",
            "5$", "1,234.", ",123", "1,,234", "inf", "NaN",
        ] {
            assert_eq!(parse_decimal(bad.as_bytes(), Dot), None, "{bad:?}");
        }
    }

    #[test]
    fn fifteen_significant_digits() {
        assert_eq!(d("123456789012345"), dec(123_456_789_012_345, 0));
        assert_eq!(parse_decimal(b"1234567890123456", Dot), None);
        assert_eq!(d("0.000123456789012345"), dec(123_456_789_012_345, 18));
        // Trailing zeros count: 10 + 6 digits.
        assert_eq!(parse_decimal(b"1234567890.123450", Dot), None);
        assert_eq!(d("1234567890.12345"), dec(123_456_789_012_345, 5));
        assert_eq!(d("-00000123456789012345"), dec(-123_456_789_012_345, 0));
        assert_eq!(parse_decimal(b"100000000000000.0", Dot), None);
        assert_eq!(d("999999999999999"), dec(999_999_999_999_999, 0));
    }

    #[test]
    fn huge_scales() {
        let q = d(&tiny(40, "1"));
        assert_eq!(q, dec(1, 41));
        let q = d(&tiny(1000, "123456789012345"));
        assert_eq!(q, dec(123_456_789_012_345, 1015));
        assert_eq!(
            parse_decimal(tiny(1000, "1234567890123456").as_bytes(), Dot),
            None
        );
    }

    #[test]
    fn dot_grouping() {
        assert_eq!(d("1,234.50"), dec(123_450, 2));
        assert_eq!(d("12,345,678"), dec(12_345_678, 0));
        assert_eq!(d("-1,234"), dec(-1234, 0));
        assert_eq!(d("(1,234.5)"), dec(-12345, 1));
        for bad in [
            "12,34.5",
            "1,2345",
            "1234,567",
            "1,234,56",
            "1,234.567,8",
            "1.234,50",
            "1 234",
            "1,234 567",
        ] {
            assert_eq!(parse_decimal(bad.as_bytes(), Dot), None, "{bad:?}");
        }
    }

    #[test]
    fn comma_grouping() {
        let c = |s: &str| parse_decimal(s.as_bytes(), Comma);
        assert_eq!(c("1.234,50"), Some(dec(123_450, 2)));
        assert_eq!(c("1 234,50"), Some(dec(123_450, 2)));
        assert_eq!(c("1\u{a0}234,50"), Some(dec(123_450, 2)));
        assert_eq!(c("1\u{a0}234\u{a0}567"), Some(dec(1_234_567, 0)));
        assert_eq!(c("12,5"), Some(dec(125, 1)));
        assert_eq!(c("1234,5"), Some(dec(12345, 1)));
        assert_eq!(c("1.234"), Some(dec(1234, 0)));
        assert_eq!(c("(1.234,5)"), Some(dec(-12345, 1)));
        for bad in [
            "1.234 567,8",
            "1 234.567",
            "1\u{a0}234.567",
            "1.23,4",
            "1,234.50",
            "12.5",
            ",5",
            "5,",
            "1,2,3",
            "1\u{a0}",
            "1\u{2009}234",
        ] {
            assert_eq!(c(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn compares_values() {
        assert_eq!(d("1.50").cmp_value(d("1.5")), Ordering::Equal);
        assert_eq!(d("1.5").cmp_value(d("1.50")), Ordering::Equal);
        assert_eq!(d("1.49").cmp_value(d("1.5")), Ordering::Less);
        assert_eq!(d("-2").cmp_value(d("1")), Ordering::Less);
        assert_eq!(d("1.0000001").cmp_value(Decimal::ONE), Ordering::Greater);
        // Scales 60 apart: beyond the i128 fast path.
        let small = d(&tiny(59, "1"));
        assert_eq!(small.cmp_value(Decimal::ZERO), Ordering::Greater);
        assert_eq!(small.cmp_value(Decimal::ONE), Ordering::Less);
        assert_eq!(dec(1, 61).cmp_value(small), Ordering::Less);
        assert_eq!(dec(10, 61).cmp_value(small), Ordering::Equal);
        assert_eq!(dec(11, 61).cmp_value(small), Ordering::Greater);
        assert_eq!(dec(1, 100).cmp_value(small), Ordering::Less);
        assert_eq!(small.cmp_value(dec(1, 100)), Ordering::Greater);
        assert_eq!(dec(-1, 500).cmp_value(dec(-1, 600)), Ordering::Less);
        assert_eq!(dec(-1, 600).cmp_value(dec(1, 500)), Ordering::Less);
    }

    #[test]
    fn percent_is_exact() {
        let p = d("19.5").percent();
        assert_eq!(p, dec(195, 3));
        assert_eq!(p.cmp_value(d("0.195")), Ordering::Equal);
        assert_eq!(d("100").percent().cmp_value(Decimal::ONE), Ordering::Equal);
    }

    #[test]
    fn rounds_half_away_from_zero() {
        // 2.675 is 2.67499999… as a double; exactly it is a tie.
        let a = line_amounts(d("2.675"), d("1"), Decimal::ZERO, 2);
        assert_eq!(
            a,
            LineAmounts {
                net: 268,
                tax: 0,
                expected: 268
            }
        );
        let a = line_amounts(d("-2.675"), d("1"), Decimal::ZERO, 2);
        assert_eq!(
            a,
            LineAmounts {
                net: -268,
                tax: 0,
                expected: -268
            }
        );
        assert_eq!(round_to_minor(d("2.665"), 2), 267);
        assert_eq!(round_to_minor(d("2.6649999"), 2), 266);
        assert_eq!(round_to_minor(d("-0.005"), 2), -1);
        assert_eq!(round_to_minor(d("-0.0049"), 2), 0);
        assert_eq!(round_to_minor(d("12"), 2), 1200);
    }

    #[test]
    fn yen_has_no_minor_digits() {
        // 100 × 0.005 = 0.5 yen → 1; 1 × 0.005 → 0.
        assert_eq!(line_amounts(d("100"), d("0.005"), Decimal::ZERO, 0).net, 1);
        assert_eq!(line_amounts(d("1"), d("0.005"), Decimal::ZERO, 0).net, 0);
        assert_eq!(
            line_amounts(d("-100"), d("0.005"), Decimal::ZERO, 0).net,
            -1
        );
        assert_eq!(round_to_minor(d("2.5"), 0), 3);
        assert_eq!(round_to_minor(d("-2.5"), 0), -3);
        assert_eq!(round_to_minor(d("1234.4999"), 0), 1234);
    }

    #[test]
    fn three_and_four_minor_digits() {
        // KWD: 1.2345 → 1.235; CLF: 1.23455 → 1.2346.
        assert_eq!(round_to_minor(d("1.2345"), 3), 1235);
        assert_eq!(
            line_amounts(d("-1"), d("1.2345"), Decimal::ZERO, 3).net,
            -1235
        );
        assert_eq!(round_to_minor(d("1.23455"), 4), 12346);
        assert_eq!(round_to_minor(d("1.23454999"), 4), 12345);
    }

    #[test]
    fn tax_and_expected_are_rounded_separately() {
        // 3 × 19.99 = 59.97; × 0.19 = 11.3943; × 1.19 = 71.3643.
        let a = line_amounts(d("3"), d("19.99"), d("0.19"), 2);
        assert_eq!(
            a,
            LineAmounts {
                net: 5997,
                tax: 1139,
                expected: 7136
            }
        );
        // 1 × 0.125, 20 %: net 0.13 (tie), tax 0.025 → 0.03, gross 0.15.
        let a = line_amounts(d("1"), d("0.125"), d("20").percent(), 2);
        assert_eq!(
            a,
            LineAmounts {
                net: 13,
                tax: 3,
                expected: 15
            }
        );
        // expected is not net + tax: 0.00499999999999999 × (1 + 2e-14)
        // = 0.00500000000000008999… → 0.01, while net and tax round to 0.
        let a = line_amounts(d("1"), d("0.00499999999999999"), d("0.00000000000002"), 2);
        assert_eq!(
            a,
            LineAmounts {
                net: 0,
                tax: 0,
                expected: 1
            }
        );
    }

    #[test]
    fn huge_scales_stay_exact() {
        // 10⁻⁴¹ × 999999999999999 ≈ 10⁻²⁶: far below half a cent.
        let q = d(&tiny(40, "1"));
        let a = line_amounts(q, d("999999999999999"), d("1"), 2);
        assert_eq!(
            a,
            LineAmounts {
                net: 0,
                tax: 0,
                expected: 0
            }
        );
        // A tiny tax rate still makes tax 0 and leaves net alone.
        let t = d(&tiny(60, "5"));
        let a = line_amounts(d("123456789012345"), d("1"), t, 2);
        assert_eq!(
            a,
            LineAmounts {
                net: 12_345_678_901_234_500,
                tax: 0,
                expected: 12_345_678_901_234_500
            }
        );
        // A tie pushed by a term 10⁻⁵³ below it (a negative rate is outside
        // the SPEC's range, but the arithmetic must still be exact).
        let a = line_amounts(d("1"), d("0.005"), dec(-1, 50), 2);
        assert_eq!(
            a,
            LineAmounts {
                net: 1,
                tax: 0,
                expected: 0
            }
        );
        let a = line_amounts(d("1"), d("0.005"), dec(1, 50), 2);
        assert_eq!(a.expected, 1);
        let a = line_amounts(d("-1"), d("0.005"), dec(-1, 50), 2);
        assert_eq!(a.expected, 0);
        // Tiny quantity with a huge scale, exactly at a tie of its own grid.
        let a = line_amounts(dec(5, 3), Decimal::ONE, dec(-1, 4_000_000), 2);
        assert_eq!(
            a,
            LineAmounts {
                net: 1,
                tax: 0,
                expected: 0
            }
        );
    }

    /// Cases computed independently with exact rational arithmetic
    /// (Python's `fractions.Fraction`), rounding half away from zero.
    #[test]
    fn matches_exact_rational_reference() {
        // (quantity, unit_price, tax_rate, minor, net, tax, expected)
        let cases: &[(&str, &str, &str, u32, i128, i128, i128)] = &[
            ("343714961700.258", "0.0053", "0.4035346424", 2, 182168929701, 73511473903, 255680403604),
            ("-294315.28", "0.002", "0.000000000206", 3, -588631, 0, -588631),
            ("-104942283624.6", "0.00002", "0.00000000002909", 2, -209884567, 0, -209884567),
            ("7630144.4566", "88854498691.2349", "0.0000006", 4, 6779726606328979272435, 4067835963797388, 6779730674164943069822),
            ("-159895.019537", "63730.857673", "0.00047593339", 2, -1019024673273, -484987867, -1019509661141),
            ("9302.566543", "73.6146", "0.0000000000000078", 4, 6848047150, 0, 6848047150),
            ("3032616100.6", "0.000616", "0.819028646011722", 4, 18680915180, 15300204666, 33981119846),
            ("508878137.95282", "0.000659", "0.0000000000167640", 4, 3353506929, 0, 3353506929),
            ("0.00461", "986632240.04851", "0.00022966", 3, 4548374627, 1044580, 4549419206),
            ("71236701.1", "63849181.3981", "0.00000000000806", 2, 454840505073612981, 3666014, 454840505077278995),
            ("3.57703", "6218265677667.5", "0.006451374682739", 3, 22242922876986978, 143497429518710, 22386420306505687),
            ("8", "8667.792", "0.0003348823837", 4, 693423360, 232215, 693655575),
            ("-6878.4", "8902792087627.0", "0.00000000000009", 4, -612369650955335568000, -55113269, -612369650955390681269),
            ("0.20463", "1773.21086", "0.00924962242455404", 2, 36285, 336, 36621),
            ("63311.51438", "41915.66", "0.525276615528", 2, 265374391084, 139394961996, 404769353080),
            ("96372857.461906", "0.00633", "0.003789921794", 2, 61004019, 231200, 61235219),
            ("40124550.2", "95962016.81222", "0.634", 4, 38504327608751653634, 24411743703948548404, 62916071312700202039),
            ("371915416.68", "0.00005", "0.00198027586508077", 3, 18595771, 36825, 18632596),
            ("-1874946524391.0", "0.099909", "0.3", 2, -18732403230538, -5619720969161, -24352124199699),
            ("65709579611.9433", "422.888731", "0.005826395125379", 2, 2778784073663817, 16190293981276, 2794974367645093),
            ("9330392.002", "3280950.6495", "0.0000374508788", 3, 30612555699051505, 1146467113243, 30613702166164749),
            ("0.08937", "10429566", "0.00000000088", 3, 932090313, 1, 932090314),
            ("0.000017", "15446814", "0.00000006", 2, 26260, 0, 26260),
            ("11", "647.9294", "0.0000077", 2, 712722, 5, 712728),
            ("68433.5", "9.18025", "0.00000004835867684", 4, 6282366384, 304, 6282366688),
            ("9880173905.547", "10044.148", "0.0000002", 3, 99237928973052089, 19847585795, 99237948820637884),
            ("785.826", "63503.0", "0.0000608008613724", 4, 499023084780, 30341033, 499053425813),
            ("6678738190.45", "152309.858663", "0.000000000000068", 0, 1017237669834620, 69, 1017237669834689),
            ("0.1838", "2101", "0.000251012785220", 4, 3861638, 969, 3862607),
            ("87339588116.3940", "135056266455", "0.00062595", 4, 117957586847176596177632700, 73835551486990190377389, 118031422398663586368010089),
            ("0.000001", "520757.544409", "0.09966100", 0, 1, 0, 1),
            ("-44970061515616.6", "723153.83", "0.000000005", 3, -32520272220353749101578, -162601361101769, -32520272382955110203347),
            ("-4533.12", "127.5", "0.463955138", 3, -577972800, -268153450, -846126250),
            ("9058.3145", "0.00236", "0.0000000000099", 2, 2138, 0, 2138),
            ("7876.1336", "61.070386", "0.0000022", 3, 480998519, 1058, 480999577),
            ("852.7", "60050806.1691", "0.00000007300", 4, 512053224203916, 37379885, 512053261583801),
            ("0.001559", "409281016.1581", "0.0002949", 3, 638069104, 188167, 638257271),
            ("-0.0002", "32712622654300.4", "0.000000000041", 3, -6542524530860, -268, -6542524531128),
            ("24459243822.2803", "60089247250069.4", "0.000025", 2, 146973754958673347702544125, 3674343873966833692564, 146977429302547314536236689),
            ("-2345186501.754", "883281.8", "0.000498067718311", 3, -2071460554604976277, -1031727632003339, -2072492282236979616),
            ("0.00000000000000000008", "773", "0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000211281901117675", 0, 0, 0, 0),
            ("-0.0000402246885024", "20578724", "0.000000000000000000000000000000000000000000000267221518529243", 4, -8277728, 0, -8277728),
            ("0.0000000000000000000318676838776565", "1578469.1", "0.000000000000000000000000797564626953217", 0, 0, 0, 0),
            ("-0.000873396", "863283417415", "0.000000000000000000000000000000000000000000000797233710598441", 4, -7539882836366, 0, -7539882836366),
            ("-0.00000000000000000000772093359806698", "44604124", "0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000125969037745878", 2, 0, 0, 0),
            ("-3122682575.8", "0.006", "0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000317860239576832", 4, -187360954548, 0, -187360954548),
            ("599094", "7", "0.000000000000000000000000000000000000000000000302921350096067", 0, 4193658, 0, 4193658),
            ("0.0000000000000001", "8824.513", "0.000000000000000000000000000000462725265891208", 2, 0, 0, 0),
            ("5085994413.7", "122483933.7", "0.00000000000000000000000000000000000000000000000000000000000000000369589008702107", 2, 62295260256620117169, 0, 62295260256620117169),
            ("59853069", "543637", "0.00000000000000000000000000000000000000000000000000000000000000000149034210000232", 4, 325383428719530000, 0, 325383428719530000),
            ("0.0000000000000000000000000009053021", "2549143247776.1", "0.00000227251038891733", 2, 0, 0, 0),
            ("0.00000000000000000000000000000000067529", "426815590.76", "0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000271072464940605", 2, 0, 0, 0),
            ("0.000000000000000000000000258250823020068", "0.0567", "0.000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000736210242381406", 3, 0, 0, 0),
            ("-4.2", "0.06", "0.000000000000000000000000000000233255800574059", 4, -2520, 0, -2520),
            ("0.000000000000000000000006049", "0.000000000000002", "0.000000000000000000000000000000331807083806098", 0, 0, 0, 0),
            ("-1.3867", "279.1667", "0.000000000000000000000000000000892400675089714", 3, -387120, 0, -387120),
            ("-4078431871080", "58150695", "0.000000000000000000000000906028792614173", 3, -237163647813452400600000, 0, -237163647813452400600000),
            ("0.000000000000000008110802463596", "734288761249", "0.000000000000000000000000000000000000000000000067669399916301", 3, 0, 0, 0),
            ("-0.0000000000000000000000000000000003539489213", "0.00000000000000000000000064", "0.000000000000000000000000000000543720532069376", 4, 0, 0, 0),
            ("0.00000000000000000000000000000215544375", "2.69", "0.000000000000000000000000715161311722546", 0, 0, 0, 0),
            ("0.220224", "4.490", "0.000000000000000000000000067139910111288", 4, 9888, 0, 9888),
            ("0.000000004", "0.3915", "0.000000000000000000000000000000157938748566402", 2, 0, 0, 0),
            ("0.00000004796", "0.000000076824956115", "0.00000000000000000000000000000000000000000000000000000000000000000909385909108530", 3, 0, 0, 0),
            ("134778.434", "0.2", "0.000000000000000000000000899592735198084", 0, 26956, 0, 26956),
            ("53606307235092", "7231078", "0.000000000000000000000000000000000000000000000960705908086297", 4, 3876313889089145891760000, 0, 3876313889089145891760000),
            ("0.5", "1", "0", 0, 1, 0, 1),
            ("-0.5", "1", "1", 0, -1, -1, -1),
            ("0.25", "2", "0.5", 0, 1, 0, 1),
            ("0.005", "1", "0", 2, 1, 0, 1),
            ("-0.005", "1", "1", 2, -1, -1, -1),
            ("0.0025", "2", "0.5", 2, 1, 0, 1),
            ("0.0005", "1", "0", 3, 1, 0, 1),
            ("-0.0005", "1", "1", 3, -1, -1, -1),
            ("0.00025", "2", "0.5", 3, 1, 0, 1),
            ("0.00005", "1", "0", 4, 1, 0, 1),
            ("-0.00005", "1", "1", 4, -1, -1, -1),
            ("0.000025", "2", "0.5", 4, 1, 0, 1),
        ];
        for &(q, p, t, minor, net, tax, expected) in cases {
            let got = line_amounts(d(q), d(p), d(t), minor);
            assert_eq!(
                got,
                LineAmounts { net, tax, expected },
                "{q} × {p} × (1 + {t}), minor {minor}"
            );
        }
    }

    /// xorshift64* from `seed`: deterministic, no dependency.
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    /// The i128 fast path and the 256-bit path agree wherever both apply.
    #[test]
    fn fast_and_wide_paths_agree() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        let (mut checked, mut checked64) = (0, 0);
        for _ in 0..20_000 {
            let mut num = |digits: u64, neg: bool| {
                let m = (next() % 10u64.pow((next() % digits + 1) as u32)) as i64;
                let m = if neg && next().is_multiple_of(3) {
                    -m
                } else {
                    m
                };
                dec(m, (next() % 12) as u32)
            };
            let (q, p, t) = (num(15, true), num(15, false), num(6, false));
            let minor = [0, 2, 3, 4][(next() % 4) as usize];
            let a_m = i128::from(q.mantissa) * i128::from(p.mantissa);
            let a_s = u64::from(q.scale) + u64::from(p.scale);
            let Some(fast) = line_amounts_small(a_m, a_s, t.mantissa, u64::from(t.scale), minor)
            else {
                continue;
            };
            let a = Wide {
                m: I256::from(a_m),
                s: a_s,
            };
            let b = Wide {
                m: a.m * I256::from(t.mantissa),
                s: a_s + u64::from(t.scale),
            };
            let wide = LineAmounts {
                net: round_wide(a, minor),
                tax: round_wide(b, minor),
                expected: round_sum(a, b, minor),
            };
            assert_eq!(fast, wide, "{q:?} {p:?} {t:?} {minor}");
            checked += 1;
            if let Some(fast64) = line_amounts_i64(q, p, t, minor) {
                assert_eq!(fast64, wide, "i64: {q:?} {p:?} {t:?} {minor}");
                checked64 += 1;
            }
        }
        assert!(checked > 10_000, "{checked}");
        assert!(checked64 > 2_000, "{checked64}");
    }

    /// The 64- and 128-bit tolerance checks agree with the 256-bit one.
    #[test]
    fn tolerance_paths_agree() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let mut near = 0;
        for _ in 0..50_000 {
            let minor = [0, 2, 3, 4][(next() % 4) as usize];
            let expected = (next() % 2_000_000) as i128 - 1_000_000;
            // A line total close to the expected amount, at some scale.
            let scale = (next() % 8) as u32;
            let jitter = (next() % 2001) as i128 - 1000;
            let Ok(mantissa) =
                i64::try_from(expected * 10i128.pow(scale) / 10i128.pow(minor) + jitter)
            else {
                continue;
            };
            let line_total = dec(mantissa, scale);
            let tolerance = match next() % 3 {
                0 => dec(1, minor),
                1 => dec((next() % 100) as i64, (next() % 6) as u32),
                _ => dec(-((next() % 5) as i64), 2),
            };
            let fast = exceeds_tolerance(line_total, expected, minor, tolerance);
            let wide = exceeds_tolerance_wide(
                (line_total.mantissa, u64::from(line_total.scale)),
                (expected, u64::from(minor)),
                (tolerance.mantissa, u64::from(tolerance.scale)),
            );
            assert_eq!(
                fast, wide,
                "{line_total:?} {expected} {minor} {tolerance:?}"
            );
            near += usize::from(!fast);
        }
        // Both answers occur.
        assert!(near > 1_000, "{near}");
    }

    #[test]
    fn tolerance_is_exact() {
        let one_cent = dec(1, 2);
        // Expected 71.36: exactly one minor unit off is within the default tolerance.
        assert!(!exceeds_tolerance(d("71.37"), 7136, 2, one_cent));
        assert!(!exceeds_tolerance(d("71.35"), 7136, 2, one_cent));
        assert!(!exceeds_tolerance(d("71.36"), 7136, 2, one_cent));
        // 1.01 units off is not.
        assert!(exceeds_tolerance(d("71.3701"), 7136, 2, one_cent));
        assert!(exceeds_tolerance(d("71.3499"), 7136, 2, one_cent));
        // JPY: one yen.
        assert!(!exceeds_tolerance(d("1001"), 1000, 0, Decimal::ONE));
        assert!(exceeds_tolerance(d("1001.01"), 1000, 0, Decimal::ONE));
        // Zero tolerance: any difference counts, however small.
        let lt = dec(1, 62);
        assert!(exceeds_tolerance(lt, 0, 2, Decimal::ZERO));
        assert!(!exceeds_tolerance(d("71.360"), 7136, 2, Decimal::ZERO));
        // Huge-scale tolerance, exactly equal to the difference, or just below it.
        assert!(!exceeds_tolerance(lt, 0, 2, dec(1, 62)));
        assert!(exceeds_tolerance(lt, 0, 2, dec(9, 63)));
        // 10⁻⁶² − 0.01 is within one cent; −10⁻⁶² − 0.01 is not.
        assert!(!exceeds_tolerance(lt, 1, 2, one_cent));
        assert!(exceeds_tolerance(dec(-1, 62), 1, 2, one_cent));
        // Negative amounts.
        assert!(!exceeds_tolerance(d("-10.01"), -1000, 2, one_cent));
        assert!(exceeds_tolerance(d("-10.02"), -1000, 2, one_cent));
        // A huge expected amount beyond the i128 fast path.
        assert!(exceeds_tolerance(d("1"), i128::MIN, 2, one_cent));
        assert!(exceeds_tolerance(d("1"), i128::MAX, 2, one_cent));
        assert!(!exceeds_tolerance(dec(1, 20), 0, 2, dec(1, 19)));
    }

    #[test]
    fn formats_minor_units() {
        let f = |a: i128, m: u32| format_minor(I256::from(a), m);
        assert_eq!(f(123_450, 2), "1234.50");
        assert_eq!(f(1234, 0), "1234");
        assert_eq!(f(-5, 2), "-0.05");
        assert_eq!(f(0, 2), "0.00");
        assert_eq!(f(0, 0), "0");
        assert_eq!(f(-1234, 0), "-1234");
        assert_eq!(f(-123_450, 2), "-1234.50");
        assert_eq!(f(1, 4), "0.0001");
        assert_eq!(f(12345, 3), "12.345");
        assert_eq!(f(-100, 2), "-1.00");
        assert_eq!(format_minor(I256::MAX, 0), I256::MAX.to_string());
        assert_eq!(
            format_minor(I256::MIN, 2),
            "-578960446186580977117854925043439539266349923328202820197287920039565648199.68"
        );
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let big = dec(i64::MAX, 0);
        assert_eq!(round_to_minor(big, 30), i128::MAX);
        assert_eq!(round_to_minor(dec(i64::MIN, 0), 30), i128::MIN);
        assert_eq!(round_to_minor(big, 0), i128::from(i64::MAX));
        let a = line_amounts(big, big, big, 4);
        assert_eq!(
            (a.net, a.tax, a.expected),
            (i128::MAX, i128::MAX, i128::MAX)
        );
    }
}
