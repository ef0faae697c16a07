//! The ledgerline command-line program.
fn main() {}
