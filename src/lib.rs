//! ledgerline: fast, exact, bounded-memory processing of invoice files.
//!
//! This crate only re-exports the workspace's crates:
//!
//! - [`core`] — the [`FileProcessor`](core::FileProcessor) trait, settings,
//!   reports, errors, record batches;
//! - [`detect`] — format, encoding and delimiter detection;
//! - [`read`] — chunked record readers;
//! - [`invoice`] — the invoice rules: columns, dates, decimals, currencies,
//!   row checks and aggregates;
//! - [`baseline`] — the standard (sequential) processor;
//! - [`optimized`] — the optimized (parallel) processor, with
//!   [`scheduler`] and [`governor`];
//! - [`session`] — what every processor does to start, run and finish a
//!   file;
//! - [`bulk`] — many files as one run under one memory budget (SPEC §11);
//! - [`gen`] — deterministic invoice test data (CSV, xlsx) in named sizes.
//!
//! The programs in `examples/` show each use: `process_file`,
//! `swap_processors`, `custom_progress`, `bulk_with_progress`, `verify`
//! and `api_client` (the HTTP API of `ledgerline serve`).
//!
//! # Example
//!
//! ```
//! use ledgerline::core::{FileProcessor, Settings};
//!
//! let csv = "invoice_id,invoice_date,customer_id,quantity,unit_price,currency\n\
//!            INV-1,2024-05-01,C1,3,2.50,EUR\n";
//! let processor = ledgerline::baseline::StandardProcessor::new(Settings::default());
//! let report = processor.process_reader("inline.csv", &mut csv.as_bytes())?;
//! assert_eq!(report.rows.valid, 1);
//! assert_eq!(report.totals[0].net, "7.50");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub use ledgerline_baseline as baseline;
pub use ledgerline_bulk as bulk;
pub use ledgerline_core as core;
pub use ledgerline_detect as detect;
pub use ledgerline_gen as gen;
pub use ledgerline_governor as governor;
pub use ledgerline_invoice as invoice;
pub use ledgerline_optimized as optimized;
pub use ledgerline_read as read;
pub use ledgerline_scheduler as scheduler;
pub use ledgerline_session as session;
