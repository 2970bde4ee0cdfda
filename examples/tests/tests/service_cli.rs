//! The options every service binary has (`kontiki_rt::cli::ServiceArgs`): `--print-config`,
//! `--check-config` and `KONTIKI_CONFIG`, run on an example binary as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(examples_tests::example_bin("rpc-service"));
    cmd.args(args)
        .env_remove("KONTIKI_CONFIG")
        .current_dir(examples_tests::repo_root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rpc-service")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write a config file");
    path.display().to_string()
}

const PASSWORD: &str = "s3cr:et@pa,ss";

#[test]
fn print_config_merges_the_files_and_hides_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let base = write(
        dir.path(),
        "base.yaml",
        &format!(
            "kontiki:\n  amqp:\n    url: \"amqp://app:{PASSWORD}@127.0.0.1:5672/%2F\"\napp:\n  db_password: hunter2\n  api_token: tok-123\n  name: shop\n"
        ),
    );
    let env = write(dir.path(), "env.yaml", "app:\n  replicas: 3\n");
    let out = run(
        &["--config", &base, "--config", &env, "--print-config"],
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let printed: serde_json::Value = serde_norway::from_str(&stdout).expect("YAML on stdout");
    assert_eq!(
        printed["kontiki"]["amqp"]["url"],
        "amqp://app:***@127.0.0.1:5672/%2F"
    );
    assert_eq!(printed["app"]["db_password"], "***");
    assert_eq!(printed["app"]["api_token"], "***");
    assert_eq!(printed["app"]["name"], "shop");
    assert_eq!(
        printed["app"]["replicas"], 3,
        "the second file is merged in"
    );
    for secret in [PASSWORD, "s3cr", "pa,ss", "hunter2", "tok-123"] {
        assert!(!stdout.contains(secret), "{secret} printed: {stdout}");
    }
}

#[test]
fn kontiki_config_names_the_files_when_no_flag_does() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = write(dir.path(), "a.yaml", "app:\n  from_a: 1\n");
    let b = write(dir.path(), "b.yaml", "app:\n  from_b: 2\n");
    let out = run(
        &["--print-config"],
        &[("KONTIKI_CONFIG", &format!("{a},{b}"))],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let printed: serde_json::Value = serde_norway::from_str(&stdout).expect("YAML on stdout");
    assert_eq!(printed["app"]["from_a"], 1);
    assert_eq!(printed["app"]["from_b"], 2);

    let out = run(&["--print-config"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no config at all is a usage error"
    );
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_config_accepts_the_example_config_without_a_broker() {
    let files = examples_tests::config_files("rpc-service");
    let mut args: Vec<String> = Vec::new();
    for f in &files {
        args.push("--config".to_owned());
        args.push(f.display().to_string());
    }
    args.push("--check-config".to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // No broker answers at this address: the check must not connect.
    let out = run(&args, &[("KONTIKI_AMQP_URL", "amqp://127.0.0.1:1/%2F")]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("configuration OK for service `rpc-service` (3 files)"),
        "{stdout}"
    );
}

#[test]
fn check_config_fails_with_the_error_and_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = write(
        dir.path(),
        "bad.yaml",
        "kontiki:\n  amqp:\n    rpc:\n      timeout: soon\n",
    );
    let out = run(&["--config", &bad, "--check-config"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("kontiki.amqp.rpc.timeout"), "{stderr}");

    let missing = dir.path().join("missing.yaml").display().to_string();
    let out = run(&["--config", &missing, "--check-config"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
}
