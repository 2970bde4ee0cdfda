//! Exercises the build-script flow on one contract of idl/: `tests/include_idl.rs` pulls the
//! result in with `kontiki_rt::include_idl!` and compares it with the checked-in generated/.

fn main() -> Result<(), kontiki_codegen::Error> {
    kontiki_codegen::compile(&["../../idl/compute.kontiki"])
}
