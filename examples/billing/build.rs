//! Generates the Rust of `billing.kontiki` (this example's contract, with the contracts it imports) into
//! `OUT_DIR`; `src/lib.rs` pulls it in with `kontiki_rt::include_idl!`.

fn main() -> Result<(), kontiki_codegen::Error> {
    kontiki_codegen::compile(&["billing.kontiki"])
}
