//! Misusing a generated trait is a compile error: a method with an argument type the contract
//! does not declare, or returning an error code the contract does not declare for the method.
//! The `.stderr` files are the messages on the pinned toolchain.

#[test]
fn misuse_of_generated_traits_does_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
