//! Generates the Rust of `registry.kontiki`, the registry's contract, into `OUT_DIR`
//! (`src/lib.rs` pulls it in with `kontiki_rt::include_idl!`), so the crate builds on its own
//! when published.

fn main() -> Result<(), kontiki_codegen::Error> {
    kontiki_codegen::compile(&["registry.kontiki"])
}
