//! Lint goldens: every `tests/lint/*.kontiki` snapshots its findings (rendered, and as
//! `--format json` objects); configuration turns rules off and changes severities.

use std::path::Path;

use kontiki_idl::lint::{LintConfig, lint_file};
use kontiki_idl::{Code, Severity};

#[test]
fn lint_goldens() {
    insta::glob!("lint", "*.kontiki", |path| {
        let rel = Path::new("tests/lint").join(path.file_name().unwrap());
        let found = lint_file(&rel, &[], &LintConfig::default()).unwrap();
        let json = serde_json::to_string_pretty(&found.to_json()).unwrap();
        insta::assert_snapshot!(format!("{found}\n{json}"));
    });
}

#[test]
fn every_rule_fires_in_the_goldens() {
    let found = lint_file(
        Path::new("tests/lint/every_rule.kontiki"),
        &[],
        &LintConfig::default(),
    )
    .unwrap();
    for rule in kontiki_idl::lint::RULES {
        assert!(
            found.diagnostics().iter().any(|d| d.code == *rule),
            "{rule} never fires"
        );
    }
    assert!(
        found
            .diagnostics()
            .iter()
            .any(|d| d.code == Code::LintConfig)
    );
}

#[test]
fn config_disables_and_sets_severity() {
    let config = LintConfig {
        disable: vec!["naming".into(), "missing-docs".into()],
        enable: Vec::new(),
        severity: [("unused-error".to_owned(), Severity::Error)].into(),
    };
    let found = lint_file(Path::new("tests/lint/every_rule.kontiki"), &[], &config).unwrap();
    let diags = found.diagnostics();
    assert!(
        !diags
            .iter()
            .any(|d| matches!(d.code, Code::LintNaming | Code::LintMissingDocs))
    );
    let unused_error = diags
        .iter()
        .find(|d| d.code == Code::LintUnusedError)
        .unwrap();
    assert_eq!(unused_error.severity, Severity::Error);
    assert!(
        diags
            .iter()
            .filter(|d| d.code == Code::LintUnusedType)
            .all(|d| d.severity == Severity::Warning)
    );
    assert_eq!(config.unknown_rules(), Vec::<String>::new());
    let bad = LintConfig {
        disable: vec!["nope".into()],
        ..LintConfig::default()
    };
    assert_eq!(bad.unknown_rules(), vec!["nope".to_owned()]);
}

#[test]
fn idl_is_lint_clean() {
    let mut dirty = Vec::new();
    for entry in std::fs::read_dir("../idl").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "kontiki") {
            let found = lint_file(&path, &[], &LintConfig::default()).unwrap();
            if !found.diagnostics().is_empty() {
                dirty.push(found.to_string());
            }
        }
    }
    assert!(
        dirty.is_empty(),
        "idl/ has lint findings:\n{}",
        dirty.join("\n")
    );
}

#[test]
fn a_file_that_does_not_check_is_an_error() {
    let err = lint_file(
        Path::new("tests/ui/err_unknown_type.kontiki"),
        &[],
        &LintConfig::default(),
    )
    .unwrap_err();
    assert!(!err.diagnostics().is_empty());
}
