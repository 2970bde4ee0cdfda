//! Placeholder until the generate benchmark lands.
fn main() {}
