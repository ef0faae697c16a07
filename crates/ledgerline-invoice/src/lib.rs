//! ledgerline-invoice (being built).
#![deny(missing_docs)]
