//! Generates the Rust of `idl/rpc_service.kontiki` into `OUT_DIR`; `src/lib.rs` pulls it in
//! with `kontiki_rt::include_idl!("rpc_service")`.

fn main() -> Result<(), kontiki_codegen::Error> {
    kontiki_codegen::compile(&["../../idl/rpc_service.kontiki"])
}
