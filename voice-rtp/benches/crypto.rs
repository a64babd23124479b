//! Placeholder replaced by the seal/open benchmarks.
fn main() {}
