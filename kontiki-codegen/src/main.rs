//! The `kontiki-codegen` command line.

fn main() {}
