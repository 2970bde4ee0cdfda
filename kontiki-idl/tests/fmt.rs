//! `kontiki_idl::fmt`: idl/ stays formatted; formatting is idempotent and keeps the checked
//! model for every idl/ file, every tests/ui input and the fuzz corpus; goldens of
//! tests/fmt/*.kontiki.

use std::path::{Path, PathBuf};

use kontiki_idl::fmt::format_source;

/// `.kontiki` files (and fuzz inputs of any name) in `dir`, sorted; none if it does not exist.
fn files_in(dir: &str, any_name: bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && (any_name || p.extension().is_some_and(|e| e == "kontiki")))
        .collect();
    out.sort();
    out
}

/// What the checker makes of `text`: the model as JSON, or the diagnostics without positions.
fn checked(name: &str, text: &str) -> String {
    match kontiki_idl::load_str(name, text) {
        Ok(model) => serde_json::to_string_pretty(&model).unwrap(),
        Err(e) => e
            .diagnostics()
            .iter()
            .map(|d| {
                // Messages quote source text, whose spacing the formatter changes.
                let message: String = d.message.split_whitespace().collect();
                format!("{} {message}\n", d.code)
            })
            .collect(),
    }
}

fn assert_keeps_meaning(path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return; // fuzz inputs need not be UTF-8
    };
    let name = path.display().to_string();
    let Ok(once) = format_source(&name, &text) else {
        assert!(
            kontiki_idl::parse_str(&name, &text).is_err(),
            "{name}: parses but does not format"
        );
        return;
    };
    let twice = format_source(&name, &once)
        .unwrap_or_else(|e| panic!("{name}: formatted text does not parse:\n{e}\n{once}"));
    assert_eq!(once, twice, "{name}: formatting is not idempotent");
    assert_eq!(
        checked(&name, &text),
        checked(&name, &once),
        "{name}: formatting changed the checked model"
    );
}

#[test]
fn idl_is_formatted() {
    let files = files_in("../idl", false);
    assert!(files.len() >= 10, "idl/ not found");
    let mut unformatted = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.display().to_string();
        let formatted = format_source(&name, &text).unwrap();
        if formatted != text {
            unformatted.push(name);
        }
    }
    assert!(
        unformatted.is_empty(),
        "not formatted (run `cargo run -p kontiki-codegen -- fmt idl/*.kontiki`): {unformatted:?}"
    );
}

#[test]
fn formatting_keeps_the_model() {
    let mut n = 0;
    for dir in ["../idl", "tests/ui", "tests/fmt"] {
        for path in files_in(dir, false) {
            assert_keeps_meaning(&path);
            n += 1;
        }
    }
    for dir in ["../fuzz/seeds/idl_check", "../fuzz/corpus/idl_check"] {
        for path in files_in(dir, true) {
            assert_keeps_meaning(&path);
            n += 1;
        }
    }
    assert!(n >= 35, "only {n} inputs");
}

#[test]
fn fmt_goldens() {
    insta::glob!("fmt", "*.kontiki", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let formatted = format_source("in.kontiki", &text).unwrap();
        insta::assert_snapshot!(formatted);
    });
}
