//! ledgerline-baseline (being built).
#![deny(missing_docs)]
