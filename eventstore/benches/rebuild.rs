//! Placeholder: the rebuild bench (1,000,000 bank envelopes, decode + apply) lands with
//! the bank domain.

fn main() {}
