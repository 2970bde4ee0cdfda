//! The `kontiki-codegen` binary: exit codes and output of `fmt`, `lint`, `check`, `-I` and
//! `--format json`, run as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kontiki-codegen"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const MESSY: &str = "package demo ;\n/// A point.\nstruct Point{x:i32 , y:i32}\n";

#[test]
fn fmt_check_names_files_and_fmt_fixes_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.kontiki"), MESSY).unwrap();
    let out = run(dir.path(), &["fmt", "--check", "a.kontiki"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("would reformat a.kontiki"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.kontiki")).unwrap(),
        MESSY
    );

    let out = run(dir.path(), &["fmt", "a.kontiki"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.kontiki")).unwrap(),
        "package demo;\n/// A point.\nstruct Point {\n    x: i32,\n    y: i32,\n}\n"
    );
    let out = run(dir.path(), &["fmt", "--check", "a.kontiki"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn fmt_reports_syntax_errors_as_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.kontiki"), "package demo;\nstruct {").unwrap();
    let out = run(dir.path(), &["fmt", "--format", "json", "bad.kontiki"]);
    assert_eq!(out.status.code(), Some(1));
    let diags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &diags[0];
    assert_eq!(d["code"], "kontiki::idl::syntax");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], "bad.kontiki");
    assert_eq!((d["line"].as_u64(), d["col"].as_u64()), (Some(2), Some(8)));
    assert!(d["end"]["line"].is_u64() && d.get("hint").is_some());
}

const LINTY: &str = "package demo;\n\n/// A point.\nstruct Point {\n    /// X.\n    x: i32,\n}\n";

#[test]
fn lint_exit_codes_follow_severity_and_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.kontiki"), LINTY).unwrap();
    // One warning (`unused-type`): exit 0, or 1 with --deny-warnings.
    let out = run(dir.path(), &["lint", "a.kontiki"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stderr).contains("kontiki::lint::unused-type"));
    let out = run(dir.path(), &["lint", "--deny-warnings", "a.kontiki"]);
    assert_eq!(out.status.code(), Some(1));

    std::fs::write(
        dir.path().join("kontiki.toml"),
        "[lint]\nseverity = { unused-type = \"error\" }\n",
    )
    .unwrap();
    let out = run(dir.path(), &["lint", "--format", "json", "a.kontiki"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let diags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diags[0]["code"], "kontiki::lint::unused-type");
    assert_eq!(diags[0]["severity"], "error");
    assert_eq!(diags[0]["line"], 4);

    std::fs::write(
        dir.path().join("kontiki.toml"),
        "[lint]\ndisable = [\"unused-type\"]\n",
    )
    .unwrap();
    let out = run(dir.path(), &["lint", "--deny-warnings", "a.kontiki"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("lint-clean"));

    std::fs::write(
        dir.path().join("kontiki.toml"),
        "[lint]\ndisable = [\"nope\"]\n",
    )
    .unwrap();
    let out = run(dir.path(), &["lint", "a.kontiki"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no lint rule `nope`"), "{out:?}");
}

#[test]
fn include_dirs_find_shared_contracts() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(
        shared.join("common.kontiki"),
        "package common;\n/// An id.\ntype Id = uuid;\n",
    )
    .unwrap();
    let app = dir.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(
        app.join("orders.kontiki"),
        "package orders;\nimport \"common.kontiki\";\n/// S.\nservice Orders {\n    /// Get.\n    rpc get(id: common.Id) -> string;\n}\n",
    )
    .unwrap();
    let out = run(&app, &["check", "orders.kontiki"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("-I DIR"), "{out:?}");
    let out = run(&app, &["-I", "../shared", "check", "orders.kontiki"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = run(&app, &["lint", "orders.kontiki", "-I", "../shared"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let gen_dir = dir.path().join("gen");
    let out = run(
        &app,
        &[
            "generate",
            "orders.kontiki",
            "--out",
            gen_dir.to_str().unwrap(),
            "-I",
            "../shared",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(gen_dir.join("common.rs").is_file());
}

#[test]
fn check_errors_as_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.kontiki"),
        "package demo;\nstruct A {\n    x: Nope,\n}\n",
    )
    .unwrap();
    let out = run(dir.path(), &["check", "a.kontiki", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let diags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diags[0]["code"], "kontiki::idl::unknown_type");
    assert_eq!(
        (diags[0]["line"].as_u64(), diags[0]["col"].as_u64()),
        (Some(3), Some(8))
    );
    assert_eq!(diags[0]["end"]["col"], 12);
}

#[test]
fn asyncapi_writes_checks_and_reports_stale_documents() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("svc.kontiki"),
        "package svc;\n/// A thing.\nevent thing.done: string;\nservice Svc {\n    name = \"svc\";\n    version = \"2.0.0\";\n    rpc ping() -> string;\n    on_event on_done(thing.done);\n}\n",
    )
    .unwrap();
    let out = run(dir.path(), &["asyncapi", "svc.kontiki", "--out", "gen"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "ok: 1 AsyncAPI document generated in gen, 1 changed\n"
    );
    let file = dir.path().join("gen/asyncapi/svc.2.0.0.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(
        doc["channels"]["queues.thing.done"]["address"],
        "svc.thing.done.queue"
    );

    let out = run(
        dir.path(),
        &["asyncapi", "svc.kontiki", "--out", "gen", "--check"],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    std::fs::write(dir.path().join("gen/asyncapi/old.json"), "{}").unwrap();
    std::fs::write(&file, "{}").unwrap();
    let out = run(
        dir.path(),
        &["asyncapi", "svc.kontiki", "--out", "gen", "--check"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("asyncapi/svc.2.0.0.json (differs)")
            && err.contains("asyncapi/old.json (not generated)"),
        "{err}"
    );

    // `--out` is required; a contract that does not check is reported.
    let out = run(dir.path(), &["asyncapi", "svc.kontiki"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    std::fs::write(
        dir.path().join("bad.kontiki"),
        "package bad;\nservice B { rpc x() -> Nope; }\n",
    )
    .unwrap();
    let out = run(dir.path(), &["asyncapi", "bad.kontiki", "--out", "gen"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("Nope"), "{out:?}");
}

const SHARED_V1: &str =
    "package shared;\n\n/// A point.\nstruct Point {\n    /// X.\n    x: i32,\n}\n";
const API_V1: &str = "package api;\n\nimport \"shared.kontiki\";\n\n/// Api.\nservice Api {\n    name = \"api\";\n    /// Gets.\n    rpc get(p: shared.Point) -> i32;\n}\n";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

#[test]
fn breaking_against_a_git_ref_a_dir_and_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("idl")).unwrap();
    std::fs::write(d.join("idl/shared.kontiki"), SHARED_V1).unwrap();
    std::fs::write(d.join("idl/api.kontiki"), API_V1).unwrap();
    git(d, &["init", "-q"]);
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "v1"]);
    std::fs::create_dir(d.join("old")).unwrap();
    std::fs::write(d.join("old/shared.kontiki"), SHARED_V1).unwrap();
    std::fs::write(d.join("old/api.kontiki"), API_V1).unwrap();

    // Unchanged: exit 0 whatever the old version is.
    let out = run(d, &["breaking", "--against", "HEAD", "idl/api.kontiki"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stdout).contains("ok: no breaking change in 1 file"));

    // A required field in a type callers send (through the import): wire.
    std::fs::write(
        d.join("idl/shared.kontiki"),
        SHARED_V1.replace("    x: i32,\n", "    x: i32,\n    /// Y.\n    y: i32,\n"),
    )
    .unwrap();
    for against in ["HEAD", "old"] {
        let out = run(
            d,
            &[
                "breaking",
                "--against",
                against,
                "--format",
                "json",
                "idl/api.kontiki",
                "idl/shared.kontiki",
            ],
        );
        assert_eq!(out.status.code(), Some(1), "{against}: {out:?}");
        let diags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(diags.as_array().unwrap().len(), 1, "{against}: {diags:#}");
        let f = &diags[0];
        assert_eq!(f["code"], "kontiki::breaking::wire");
        assert_eq!(f["message"], "required field `y` added to `Point`");
        assert_eq!(f["file"], "idl/shared.kontiki");
        assert_eq!((f["line"].as_u64(), f["col"].as_u64()), (Some(8), Some(5)));
        assert!(f["hint"].as_str().unwrap().contains("old writers"));
    }
    let out = run(d, &["breaking", "--against", "HEAD", "idl/api.kontiki"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("idl/shared.kontiki:8:5"), "{err}");
    assert!(
        err.contains("1 breaking change (1 wire, 0 source only)"),
        "{err}"
    );

    // Source only: a defaulted field. Fails by default, not with `--level wire`.
    std::fs::write(
        d.join("idl/shared.kontiki"),
        SHARED_V1.replace(
            "    x: i32,\n",
            "    x: i32,\n    /// Y.\n    y: i32 = 0,\n",
        ),
    )
    .unwrap();
    let out = run(d, &["breaking", "--against", "HEAD", "idl/shared.kontiki"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("kontiki::breaking::source"));
    let out = run(
        d,
        &[
            "breaking",
            "--against",
            "HEAD",
            "--level",
            "wire",
            "idl/shared.kontiki",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text(&out.stderr).contains("warning: 1 breaking change"),
        "{out:?}"
    );

    // A file against a file, with the old place in the report.
    let out = run(
        d,
        &[
            "breaking",
            "--against",
            "old/shared.kontiki",
            "idl/shared.kontiki",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // A file that is new at the ref has nothing to compare; an unknown ref is an error.
    std::fs::write(d.join("idl/new.kontiki"), "package new;\n").unwrap();
    let out = run(d, &["breaking", "--against", "HEAD", "idl/new.kontiki"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text(&out.stderr).contains("no old version"));
    // An old version that does not check: exit 2, its diagnostics named after the ref.
    std::fs::write(
        d.join("idl/broken.kontiki"),
        "package broken;\n\n/// A.\nstruct A {\n    /// X.\n    x: Nope,\n}\n",
    )
    .unwrap();
    git(d, &["add", "idl/broken.kontiki"]);
    git(d, &["commit", "-qm", "broken"]);
    std::fs::write(d.join("idl/broken.kontiki"), "package broken;\n").unwrap();
    let out = run(
        d,
        &[
            "breaking",
            "--against",
            "HEAD",
            "--format",
            "json",
            "idl/broken.kontiki",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let diags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diags[0]["code"], "kontiki::idl::unknown_type", "{diags:#}");
    assert_eq!(diags[0]["file"], "HEAD:idl/broken.kontiki", "{diags:#}");
    assert_eq!(
        (diags[0]["line"].as_u64(), diags[0]["col"].as_u64()),
        (Some(6), Some(8))
    );
    let out = run(d, &["breaking", "--against", "HEAD", "idl/broken.kontiki"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("error: the old version HEAD:idl/broken.kontiki does not check"),
        "{out:?}"
    );

    let out = run(
        d,
        &["breaking", "--against", "no-such-ref", "idl/api.kontiki"],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        text(&out.stderr).contains("neither a directory, a file nor a git ref"),
        "{out:?}"
    );
}
