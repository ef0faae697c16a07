//! ledgerline: fast, exact, bounded-memory processing of invoice files.
//!
//! ledgerline validates and totals invoice exports — CSV (any delimiter,
//! UTF-8, UTF-16, Windows-1252, gzip) and Excel (xlsx, xlsm, xlsb, xls,
//! ods) — against the rules of its SPEC, with money as exact decimals end
//! to end and memory bounded by settings, not by the file. This crate is
//! the facade: it re-exports the workspace's crates, and this page is a
//! tutorial.
//!
//! # Processing one file
//!
//! A processor turns one file into one [`Report`](core::Report): row
//! counts, per-currency totals (exact decimal strings), and every row error
//! by row and column. A file that cannot be processed at all is a
//! [`FileError`](core::FileError); a bad *row* is data in the report.
//!
//! ```
//! use ledgerline::core::{FileProcessor, Settings};
//!
//! let csv = "invoice_id,invoice_date,customer_id,quantity,unit_price,currency\n\
//!            INV-1,2024-05-01,C1,3,2.50,EUR\n\
//!            INV-2,2024-05-02,C2,x,1.00,EUR\n";
//! let processor = ledgerline::baseline::StandardProcessor::new(Settings::default());
//! let report = processor.process_reader("inline.csv", &mut csv.as_bytes())?;
//! assert_eq!((report.rows.valid, report.rows.invalid), (1, 1));
//! assert_eq!(report.totals[0].net, "7.50");
//! let e = &report.errors[0];
//! assert_eq!((e.row, e.column, e.code.as_str()), (3, Some("quantity"), "invalid_decimal"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `process_file(path)` does the same for a file on disk; the format is
//! found from the content, never the name.
//!
//! # Choosing a processor
//!
//! Both processors implement [`FileProcessor`](core::FileProcessor) and give
//! the same report (metrics aside): [`baseline::StandardProcessor`] runs on
//! the calling thread; [`optimized::OptimizedProcessor`] overlaps reading,
//! validation and merging on several threads (levels 1–3) under the
//! memory [`governor`]. Code written against `&dyn FileProcessor` takes
//! either.
//!
//! ```
//! use ledgerline::core::{FileProcessor, Settings};
//!
//! fn rows_valid(p: &dyn FileProcessor, csv: &str) -> Result<u64, ledgerline::core::FileError> {
//!     Ok(p.process_reader("inline.csv", &mut csv.as_bytes())?.rows.valid)
//! }
//! let csv = "invoice_id,invoice_date,customer_id,quantity,unit_price,currency\n\
//!            INV-1,2024-05-01,C1,3,2.50,EUR\n";
//! let standard = ledgerline::baseline::StandardProcessor::new(Settings::default());
//! let optimized = ledgerline::optimized::OptimizedProcessor::new(Settings::default());
//! assert_eq!(rows_valid(&standard, csv)?, rows_valid(&optimized, csv)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Settings
//!
//! [`Settings`](core::Settings) holds every setting with a documented
//! default; `from_env` reads the environment (`OPTIMIZE_MAX_WORKERS`,
//! `OPTIMIZE_CHUNK_SIZE`, `OPTIMIZE_MEMORY_THRESHOLD`, `OPTIMIZE_LEVEL`,
//! `LEDGERLINE_*`), and `apply` / `from_pairs` set values by name. Every
//! value is checked where it is set; a bad one is the file error
//! `invalid_settings`.
//!
//! ```
//! use ledgerline::core::{FileErrorCode, Settings};
//!
//! let s = Settings::from_pairs([("date_order", "dmy"), ("default_currency", "chf")])?;
//! assert_eq!(s.default_currency.as_deref(), Some("CHF"));
//! let e = Settings::from_pairs([("default_currency", "XXY")]).unwrap_err();
//! assert_eq!(e.code, FileErrorCode::InvalidSettings);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! A [`FileError`](core::FileError) has a matchable
//! [`code`](core::FileErrorCode), and, where they exist, the file's path,
//! the operating system's [`io::ErrorKind`](std::io::ErrorKind) and the
//! source error:
//!
//! ```
//! use ledgerline::core::{FileErrorCode, FileProcessor, Settings};
//!
//! let processor = ledgerline::baseline::StandardProcessor::new(Settings::default());
//! let e = processor.process_file("no/such/invoices.csv".as_ref()).unwrap_err();
//! assert_eq!(e.code, FileErrorCode::Io);
//! assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
//! assert!(std::error::Error::source(&e).is_some());
//! ```
//!
//! # Many files, progress, test data
//!
//! [`bulk::BulkProcessor`] runs many files as one run under one memory
//! budget, with progress events and the invoices found in more than one
//! file; one file's progress comes through
//! [`RunContext`](core::RunContext); [`gen`] writes deterministic invoice
//! files in the original design's sizes.
//!
//! ```
//! use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
//! use ledgerline::bulk::{BulkFile, BulkProcessor, BulkRun};
//! use ledgerline::core::Settings;
//!
//! let dir = std::env::temp_dir().join(format!("ledgerline-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let mut files = Vec::new();
//! for seed in 0..3 {
//!     let path = dir.join(format!("invoices-{seed}.csv"));
//!     let mut out = std::fs::File::create(&path)?;
//!     ledgerline::gen::generate(ledgerline::gen::Preset::Small.rows(), seed, 0.0, &mut out)?;
//!     files.push(BulkFile::new(path));
//! }
//! let report = BulkProcessor::new(Settings::default()).run(&files, &BulkRun::default())?;
//! assert_eq!(report.summary.files, 3);
//! assert_eq!(report.summary.rows.total, 300);
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crates
//!
//! - [`core`] — the [`FileProcessor`](core::FileProcessor) trait, settings,
//!   reports, errors, record batches, run contexts, the ISO 4217 table;
//! - [`detect`] — format, encoding and delimiter detection;
//! - [`read`] — chunked record readers;
//! - [`invoice`] — the invoice rules: columns, dates, decimals, row checks
//!   and aggregates;
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
//! and `api_client` (the HTTP API of `ledgerline serve`, whose crates —
//! `ledgerline-server`, `ledgerline-client`, `ledgerline-api`,
//! `ledgerline-store` — are not part of this facade).
#![deny(missing_docs)]

pub use ledgerline_baseline as baseline;
pub use ledgerline_bulk as bulk;
pub use ledgerline_core as core;
pub use ledgerline_detect as detect;
pub use ledgerline_gen as gen;
pub use ledgerline_governor as governor;
pub use ledgerline_invoice as invoice;
pub use ledgerline_optimized as optimized;
pub use ledgerline_output as output;
pub use ledgerline_read as read;
pub use ledgerline_scheduler as scheduler;
pub use ledgerline_session as session;
