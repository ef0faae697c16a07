//! ledgerline: fast, exact, bounded-memory processing of invoice files.
#![deny(missing_docs)]

pub use ledgerline_baseline as baseline;
pub use ledgerline_core as core;
pub use ledgerline_detect as detect;
pub use ledgerline_invoice as invoice;
pub use ledgerline_read as read;
