//! ledgerline-read (being built).
#![deny(missing_docs)]
