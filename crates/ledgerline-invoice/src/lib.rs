//! Invoice rules of SPEC §2–§7: columns, dates, exact decimals, currencies,
//! row checks and aggregates.
#![deny(missing_docs)]

pub mod currency;
pub mod date;
pub mod decimal;
pub mod header;
