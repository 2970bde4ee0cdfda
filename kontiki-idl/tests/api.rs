//! The library API: diagnostics as values, sorting, `Debug` rendering.

use kontiki_idl::{Code, load_str, parse_str};

#[test]
fn diagnostics_are_values_sorted_by_position() {
    let text =
        "package p;\nstruct A { b: Nope, c: map<i32, string> }\nservice S { rpc x() raises E; }\n";
    let err = load_str("mem.kontiki", text).unwrap_err();
    let codes: Vec<Code> = err.diagnostics().iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [Code::UnknownType, Code::MapKeyNotString, Code::UnknownError]
    );
    let starts: Vec<u32> = err
        .diagnostics()
        .iter()
        .map(|d| d.span.unwrap().start)
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));
    let first = &err.diagnostics()[0];
    assert_eq!(first.message, "unknown type `Nope`");
    assert_eq!(
        err.sources().location(first.span.unwrap()),
        "mem.kontiki:2:15"
    );
}

#[test]
fn debug_is_the_rendered_report() {
    let err = load_str("mem.kontiki", "package p;\nstruct A { b: strng }\n").unwrap_err();
    let debug = format!("{err:?}");
    assert!(debug.contains("kontiki::idl::unknown_type"), "{debug}");
    assert!(debug.contains("mem.kontiki:2:15"), "{debug}");
    assert!(debug.contains("did you mean `string`?"), "{debug}");
    assert!(!debug.contains('\u{1b}'), "no colour codes: {debug}");
}

#[test]
fn parse_str_keeps_docs_and_spans() {
    let file = parse_str(
        "mem.kontiki",
        "//! Pkg.\npackage p;\n/// Doc.\nstruct A {}\n",
    )
    .unwrap();
    assert_eq!(file.docs.lines(), ["Pkg."]);
    let kontiki_idl::ast::Item::Struct(s) = &file.items[0] else {
        panic!("struct expected")
    };
    assert_eq!(s.docs.lines(), ["Doc."]);
    assert_eq!(s.name.name, "A");
    assert!(s.span.start < s.span.end);
}

#[test]
fn model_resolves_imports() {
    let model = kontiki_idl::load("../idl/api_gateway.kontiki").unwrap();
    assert_eq!(model.root, "api_gateway");
    assert_eq!(model.packages.last().unwrap().name, "api_gateway");
    let svc = &model.root_package().unwrap().services[0];
    assert_eq!(svc.wire_name, "api-gateway");
    let err = &svc.rpcs[0].errors[0];
    assert_eq!(
        (
            err.package.as_str(),
            err.code.as_str(),
            err.message.as_str()
        ),
        ("rpc_service", "USER_INPUT_ERROR", "Invalid feature value")
    );
}

#[test]
fn missing_root_file_is_an_error() {
    let err = kontiki_idl::load("does/not/exist.kontiki").unwrap_err();
    assert_eq!(err.diagnostics()[0].code, Code::Io);
}
