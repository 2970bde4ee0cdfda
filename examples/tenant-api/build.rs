//! Generates the Rust of `tenants.kontiki` (this example's contract) into `OUT_DIR`;
//! `src/lib.rs` pulls it in with `kontiki_rt::include_idl!`.

fn main() -> Result<(), kontiki_codegen::Error> {
    kontiki_codegen::compile(&["tenants.kontiki"])
}
