//! ledgerline-detect (being built).
#![deny(missing_docs)]
