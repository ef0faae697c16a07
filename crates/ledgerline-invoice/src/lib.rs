//! Invoice rules of SPEC §2–§7: columns, dates, exact decimals, currencies,
//! row checks and aggregates.
//!
//! The flow for one file, shared by every processor:
//! 1. [`Rules::new`] checks the settings (before any file is read);
//! 2. [`read_prelude`] finds the header, maps [`Columns`] and decides the
//!    `auto` date order;
//! 3. [`Validator::validate`] checks a chunk of records into a
//!    [`ChunkResult`] — chunks are independent, so any thread may do it;
//! 4. [`Merger::push`] takes chunk results **in chunk order** (the
//!    `invoice_inconsistent` anchors depend on file order) and
//!    [`Merger::finish`] makes the [`Report`](ledgerline_core::Report).
//!
//! # Example
//!
//! ```
//! use ledgerline_core::{DateOrder, RecordBatch, RecordStatus, Settings};
//! use ledgerline_invoice::{Columns, Merger, Rules, Validator};
//!
//! let rules = Rules::new(&Settings::default())?;
//! let header: Vec<String> = ["invoice_id", "invoice_date", "customer_id", "quantity", "unit_price", "currency"]
//!     .iter().map(|s| s.to_string()).collect();
//! let columns = Columns::resolve(&header, &rules, "example.csv")?;
//! let mut batch = RecordBatch::new();
//! for f in ["INV-1", "2024-05-01", "C1", "3", "2.50", "EUR"] {
//!     batch.push_field(f.as_bytes());
//! }
//! batch.finish_record(2, RecordStatus::Ok);
//! let result = Validator::new(&rules, &columns, DateOrder::Mdy, false, true).validate(&batch);
//! let mut merger = Merger::new(rules.max_errors);
//! merger.push(result);
//! assert_eq!(merger.counts().valid, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod anchors;
pub mod columns;
/// ISO 4217 currencies (the table lives in `ledgerline-core`, which checks
/// `default_currency` with it).
pub use ledgerline_core::currency;
pub mod date;
pub mod decimal;
pub mod header;
pub mod merge;
pub mod prelude;
pub mod rules;
pub mod validate;

pub use columns::Columns;
pub use merge::Merger;
pub use prelude::{read_prelude, Prelude};
pub use rules::Rules;
pub use validate::{ChunkResult, OutRow, RawFields, Validator};

/// The required columns of SPEC §2, as the crate's unit tests' header.
#[cfg(test)]
pub(crate) const TEST_HEADER: [&str; 6] = [
    "invoice_id",
    "invoice_date",
    "customer_id",
    "quantity",
    "unit_price",
    "currency",
];
