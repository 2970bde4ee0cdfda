//! Golden tests: every `idl/*.kontiki` snapshots its checked model; every
//! `tests/ui/err_*.kontiki` snapshots its rendered diagnostics.

use std::path::{Path, PathBuf};

/// The path relative to the crate, so snapshots do not depend on where the repo lives.
fn relative(path: &Path, dir: &str) -> PathBuf {
    Path::new(dir).join(path.file_name().unwrap())
}

#[test]
fn idl_models() {
    insta::glob!("../../idl", "*.kontiki", |path| {
        let model = match kontiki_idl::load(relative(path, "../idl")) {
            Ok(m) => m,
            Err(e) => panic!("{} should be valid:\n{e}", path.display()),
        };
        insta::assert_yaml_snapshot!(model);
    });
}

#[test]
fn ui_errors() {
    insta::glob!("ui", "err_*.kontiki", |path| {
        let err = match kontiki_idl::load(relative(path, "tests/ui")) {
            Ok(_) => panic!("{} should fail", path.display()),
            Err(e) => e,
        };
        let codes: Vec<_> = err.diagnostics().iter().map(|d| d.code.as_str()).collect();
        insta::assert_snapshot!(format!("codes: {codes:?}\n\n{err}"));
    });
}

#[test]
fn each_check_has_a_failing_input() {
    use kontiki_idl::Code;
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("tests/ui").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("err_") && name.ends_with(".kontiki")) {
            continue;
        }
        let err = kontiki_idl::load(&path).unwrap_err();
        seen.extend(err.diagnostics().iter().map(|d| d.code));
    }
    for code in Code::ALL {
        if *code == Code::Io
            || code.lint_rule().is_some()
            || code.as_str().starts_with("kontiki::breaking::")
        {
            continue;
        }
        assert!(
            seen.contains(code),
            "no tests/ui/err_*.kontiki produces {code}"
        );
    }
}
