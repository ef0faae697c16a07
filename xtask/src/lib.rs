//! Library side of `cargo xtask`: the task implementations, kept out of
//! `main.rs` so tests and benches can call them directly.
//!
//! - [`gen`]: the deterministic invoice CSV generator behind `cargo xtask gen`
//!   (the `ledgerline-gen` crate, which `ledgerline gen` uses too).
//! - [`xlsx`]: the same invoices as an xlsx workbook (`gen --xlsx`).
//! - [`workbooks`]: small crafted workbooks that ask a reader for far more
//!   memory than their size (`hostile-excel` and the Excel tests).
//!
//! # Example
//!
//! ```
//! let mut csv = Vec::new();
//! xtask::gen::generate(100, 1, 0.02, &mut csv)?;
//! assert!(csv.starts_with(xtask::gen::HEADER.as_bytes()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub use ledgerline_gen as gen;
pub use ledgerline_gen::xlsx;
pub mod workbooks;
