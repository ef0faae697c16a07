//! Rows out of a run, for outputs: every invalid row as read, every clean
//! row normalized, in file order. Both processors feed a [`RowSink`] from
//! their in-order merge (the one `Merger`), so their outputs are identical;
//! what a sink writes (CSV, JSON Lines, a database) is not known here.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::ErrorCode;

/// An exact decimal, `mantissa × 10^-scale`; printed plainly (`-12.50`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exact {
    /// The digits.
    pub mantissa: i128,
    /// Digits after the point.
    pub scale: u32,
}

impl Exact {
    /// Prints into `buf` from the right (digits, the point after `scale` of
    /// them, at least one before it); the start of the text, or `None` when
    /// the scale is too large for the buffer.
    fn print(&self, buf: &mut [u8; 84]) -> Option<usize> {
        let scale = self.scale as usize;
        if scale > 40 {
            return None;
        }
        let mut at = buf.len();
        let mut n = self.mantissa.unsigned_abs();
        let mut written = 0;
        loop {
            // u128 division is slow: the common amounts fit u64.
            let digit = match u64::try_from(n) {
                Ok(small) => {
                    n = u128::from(small / 10);
                    small % 10
                }
                Err(_) => {
                    let d = (n % 10) as u64;
                    n /= 10;
                    d
                }
            };
            at -= 1;
            buf[at] = b'0' + digit as u8;
            written += 1;
            if written == scale {
                at -= 1;
                buf[at] = b'.';
            }
            if n == 0 && written > scale {
                break;
            }
        }
        if self.mantissa < 0 {
            at -= 1;
            buf[at] = b'-';
        }
        Some(at)
    }

    /// Appends the plain text (as `Display` prints it) to `out`.
    pub fn push_to(&self, out: &mut String) {
        let mut buf = [0u8; 84];
        match self.print(&mut buf) {
            // Only ASCII digits, '.' and '-' were written.
            Some(at) => out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or_default()),
            None => {
                use std::fmt::Write as _;
                let _ = write!(out, "{self}");
            }
        }
    }
}

impl fmt::Display for Exact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 84];
        if let Some(at) = self.print(&mut buf) {
            return f.write_str(std::str::from_utf8(&buf[at..]).map_err(|_| fmt::Error)?);
        }
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let digits = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = digits.split_at(digits.len() - scale);
        write!(f, "{sign}{int}.{frac}")
    }
}

/// A row that counts toward the totals, normalized (SPEC §2's fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanRow {
    /// Its row number (SPEC §3).
    pub row: u64,
    /// `invoice_id`, trimmed.
    pub invoice_id: String,
    /// `invoice_date` as `YYYY-MM-DD`.
    pub invoice_date: String,
    /// `due_date` as `YYYY-MM-DD`, when given.
    pub due_date: Option<String>,
    /// `customer_id`, trimmed.
    pub customer_id: String,
    /// `customer_name`, when given.
    pub customer_name: Option<String>,
    /// `sku`, when given.
    pub sku: Option<String>,
    /// `description`, when given.
    pub description: Option<String>,
    /// `quantity`, exactly as parsed.
    pub quantity: Exact,
    /// `unit_price`, exactly as parsed.
    pub unit_price: Exact,
    /// `tax_rate` as a fraction (`20%` is `0.20`; empty is `0`).
    pub tax_rate: Exact,
    /// `line_total`, exactly as parsed, when given.
    pub line_total: Option<Exact>,
    /// The ISO 4217 code, upper case (the default currency when empty).
    pub currency: &'static str,
    /// round(quantity × unit_price), at the currency's minor units (SPEC §7).
    pub net: Exact,
    /// round(quantity × unit_price × tax_rate).
    pub tax: Exact,
    /// round(line_total), or net + tax when it is absent.
    pub gross: Exact,
}

/// A row with at least one error, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRow {
    /// Its row number (SPEC §3).
    pub row: u64,
    /// Its fields as read (invalid bytes replaced by U+FFFD).
    pub fields: Vec<String>,
    /// Every error of the row, in SPEC §4's order, with its message.
    pub errors: Vec<(ErrorCode, String)>,
}

/// Where a run's rows go. Called in file order, from the merge; blank rows
/// are not given. A sink keeps its own I/O errors and reports them when it
/// is finished by its owner.
pub trait RowSink: Send {
    /// The file's header record as read, before any row.
    fn header(&mut self, fields: &[String]);
    /// An invalid row.
    fn rejected(&mut self, row: &RejectedRow);
    /// A row counted in the totals.
    fn clean(&mut self, row: &CleanRow);
}

/// What loading one file's clean rows into a database did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Loaded {
    /// The table loaded into.
    pub table: String,
    /// Rows added by this load.
    pub inserted: u64,
    /// Rows of this file already in the table from an earlier load (same
    /// content, same row), left as they were.
    pub already_loaded: u64,
}

/// A sink as a run holds it.
pub type SharedRowSink = Arc<Mutex<dyn RowSink>>;

/// Where each file of a many-file run writes its rows: opened just before
/// the file runs, closed when it ends (`ledgerline-bulk` calls it; an
/// implementation writes files, loads a database, …).
pub trait FileOutputs: Send + Sync {
    /// The sink of file `index` (named `name` in the run); `Ok(None)` when
    /// it has no outputs. An error becomes the file's outcome.
    /// `path` is where the file is read from (to fingerprint it).
    fn open(
        &self,
        index: usize,
        name: &str,
        path: &std::path::Path,
    ) -> Result<Option<SharedRowSink>, crate::FileError>;
    /// File `index` ended: keep its outputs when `complete` (it gave a
    /// report), drop them otherwise; what a load did goes into the file's
    /// report. An error becomes the file's outcome.
    fn close(
        &self,
        index: usize,
        name: &str,
        complete: bool,
    ) -> Result<Option<Loaded>, crate::FileError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prints_plainly() {
        let e = |mantissa, scale| Exact { mantissa, scale }.to_string();
        assert_eq!(e(-1250, 2), "-12.50");
        assert_eq!(e(5, 3), "0.005");
        assert_eq!(e(-5, 1), "-0.5");
        assert_eq!(e(0, 2), "0.00");
        assert_eq!(e(42, 0), "42");
        assert_eq!(e(i128::MIN, 0), "-170141183460469231731687303715884105728");
        assert_eq!(e(i128::MAX, 38), "1.70141183460469231731687303715884105727");
        assert_eq!(e(-7, 40), "-0.0000000000000000000000000000000000000007");
        // Past the buffer: the general path, same shape.
        assert_eq!(e(12, 41), format!("0.{}12", "0".repeat(39)));
        // push_to appends the same text.
        let mut out = String::from(">");
        Exact {
            mantissa: -1250,
            scale: 2,
        }
        .push_to(&mut out);
        Exact {
            mantissa: 12,
            scale: 41,
        }
        .push_to(&mut out);
        assert_eq!(out, format!(">-12.500.{}12", "0".repeat(39)));
        assert_eq!(e(0, 3), "0.000");
        assert_eq!(e(-100, 2), "-1.00");
    }
}
