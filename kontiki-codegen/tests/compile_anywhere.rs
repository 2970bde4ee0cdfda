//! The generated code compiles wherever a user includes it: the output of every `idl/*.kontiki`
//! and of `tests/hostile/hostile.kontiki` (prelude, std, runtime and keyword names) is built in
//! a crate on edition 2021 and one on 2024, each beside user items named like the prelude's,
//! once more under `#![no_implicit_prelude]`, with `-D warnings`, and on the workspace's
//! minimum Rust version.
//!
//! The fixture crates are written to `target/codegen-compile/` (workspaces of their own with
//! their own target dirs, so the first run checks the runtime's dependencies once and later runs
//! only the generated code) and checked with `cargo check --offline`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's `rust-version`; `tests/compile_anywhere.rs` fails if it drifts.
const MSRV: &str = "1.89";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("kontiki-codegen is inside the workspace")
        .to_path_buf()
}

/// Every contract: idl/ and the hostile one.
fn contracts() -> Vec<PathBuf> {
    let root = workspace();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("idl"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kontiki"))
        .collect();
    files.sort();
    files.push(root.join("kontiki-codegen/tests/hostile/hostile.kontiki"));
    files
}

/// User items named like the prelude's, the standard library's and the runtime's, glob-imported
/// into every package module (a glob import shadows the prelude).
const SHADOWS: &str = r#"
#[allow(dead_code, non_camel_case_types, unused_macros, clippy::all)]
pub mod shadows {
    pub struct Option; pub struct Some; pub struct None; pub struct Result; pub struct Ok;
    pub struct Err; pub struct Vec; pub struct String; pub struct Box; pub struct Future;
    pub struct Send; pub struct Sync; pub struct Clone; pub struct Default; pub struct Into;
    pub struct From; pub struct Iterator; pub struct IntoIterator; pub struct ToOwned;
    pub struct ToString; pub struct Debug; pub struct PartialEq; pub struct Eq; pub struct Hash;
    pub struct Copy; pub struct Ord; pub struct PartialOrd; pub struct Arc; pub struct Context;
    pub struct Messenger; pub struct RpcError; pub struct Error; pub struct Display;
    pub mod std {}
    pub mod core {}
    pub mod alloc {}
    pub mod serde {}
    pub mod serde_json {}
    pub mod kontiki_rt {}
    pub mod rt {}
    #[macro_export]
    macro_rules! vec { ($($t:tt)*) => { compile_error!("the user's vec!") }; }
    #[macro_export]
    macro_rules! format { ($($t:tt)*) => { compile_error!("the user's format!") }; }
    #[macro_export]
    macro_rules! write { ($($t:tt)*) => { compile_error!("the user's write!") }; }
}
"#;

fn lib_rs(packages: &[String]) -> String {
    let mut s = String::from(
        "//! Generated code included the way a user crate does.\n#![deny(warnings)]\n",
    );
    s.push_str(SHADOWS);
    for p in packages {
        writeln!(
            s,
            "pub mod {p} {{\n    #[allow(unused_imports)]\n    use crate::shadows::*;\n    include!(\"gen/{p}.rs\");\n}}"
        )
        .unwrap();
    }
    s.push_str("pub mod no_prelude {\n    #![no_implicit_prelude]\n");
    for p in packages {
        writeln!(
            s,
            "    pub mod {p} {{\n        ::core::include!(\"gen/{p}.rs\");\n    }}"
        )
        .unwrap();
    }
    s.push_str("}\n");
    s
}

fn manifest(name: &str, edition: &str) -> String {
    let rt = workspace().join("kontiki-rt");
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"{edition}\"\npublish = false\n\n\
         [lib]\npath = \"lib.rs\"\n\n[dependencies]\nkontiki-rt = {{ path = {:?} }}\n",
        rt.display().to_string()
    )
}

/// Writes `path` only when its content changes (keeps cargo's fingerprints).
fn write(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// The fixture workspace `target/codegen-compile/<name>`: crates `ed2021/` and `ed2024/`, each
/// with the generated files in `gen/`. One per test, so two cargo runs never share a lock file.
fn fixture(name: &str) -> PathBuf {
    let root = workspace();
    let dir = root.join("target/codegen-compile").join(name);
    let output = kontiki_codegen::generate(&contracts(), &kontiki_codegen::Opts::default())
        .unwrap_or_else(|e| panic!("generation failed: {e:?}"));
    let mut packages = Vec::new();
    for (name, bytes) in output.files.iter() {
        if let Some(pkg) = name.strip_suffix(".rs")
            && !name.contains('/')
        {
            let text = std::str::from_utf8(bytes).expect("generated Rust is UTF-8");
            packages.push(pkg.to_owned());
            for ed in ["ed2021", "ed2024"] {
                write(&dir.join(ed).join("gen").join(name), text);
            }
        }
    }
    packages.sort();
    assert!(
        packages.iter().any(|p| p == "hostile") && packages.iter().any(|p| p == "std"),
        "{packages:?}"
    );
    for (ed, edition) in [("ed2021", "2021"), ("ed2024", "2024")] {
        write(
            &dir.join(ed).join("Cargo.toml"),
            &manifest(&format!("kontiki-compile-{ed}"), edition),
        );
        write(&dir.join(ed).join("lib.rs"), &lib_rs(&packages));
    }
    write(
        &dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"ed2021\", \"ed2024\"]\nresolver = \"2\"\n",
    );
    if !dir.join("Cargo.lock").exists() {
        std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    }
    dir
}

/// Runs `cargo check` on both fixture crates with `toolchain` (`None`: the one running this).
fn check(dir: &Path, toolchain: Option<&str>, target: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(match toolchain {
        Some(_) => "cargo",
        None => &cargo,
    });
    // The outer cargo's variables would point the inner build at the wrong crate.
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") || k == "RUSTC" || k == "RUSTUP_TOOLCHAIN" {
            cmd.env_remove(k);
        }
    }
    // An explicit toolchain: a dependency's own `rust-toolchain` file must not pick another.
    match toolchain {
        Some(t) => {
            cmd.env("RUSTUP_TOOLCHAIN", t);
        }
        None => {
            cmd.env("RUSTC", current_rustc());
        }
    }
    let out = cmd
        .args([
            "check",
            "--offline",
            "--workspace",
            "--quiet",
            "--target-dir",
        ])
        .arg(dir.join(target))
        .current_dir(dir)
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo check of the generated code failed ({}, toolchain {}):\n{}",
        dir.display(),
        toolchain.unwrap_or("current"),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `rustc` of the toolchain running this test, by absolute path.
fn current_rustc() -> PathBuf {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(workspace())
        .output()
        .expect("rustc runs");
    assert!(out.status.success(), "rustc --print sysroot failed");
    let sysroot = String::from_utf8(out.stdout).expect("a UTF-8 sysroot");
    Path::new(sysroot.trim()).join("bin/rustc")
}

#[test]
fn generated_code_compiles_on_2021_2024_and_without_prelude() {
    let dir = fixture("current");
    check(&dir, None, "target");
}

#[test]
fn generated_code_and_runtime_compile_on_the_declared_msrv() {
    let manifest = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("rust-version = \"{MSRV}\"")),
        "the workspace's rust-version is not {MSRV}: update MSRV here and in docs/codegen.md"
    );
    let installed = Command::new("rustc")
        .arg("--version")
        .env("RUSTUP_TOOLCHAIN", MSRV)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "Rust {MSRV} (the workspace's rust-version) is not installed: \
         `rustup toolchain install {MSRV} --profile minimal`"
    );
    let dir = fixture("msrv");
    check(&dir, Some(MSRV), "target");
}
