//! The quickstart example (README's first command) runs and prints what its docs say.

mod support;

#[test]
fn quickstart_runs_and_prints_the_tour() {
    let out = std::process::Command::new(support::example_bin("quickstart"))
        .env("KONTIKI_AMQP_URL", support::amqp_url())
        .output()
        .expect("run the quickstart example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "compute-api.compute(21)             -> 42",
        "rpc-service.rpc_example(\"ok\")       -> \"ok\"",
        "client error USER_INPUT_ERROR: Invalid feature value",
        "and published thing_processed {\"payload\":{\"id\":7}}",
        "unknown service `nobody`",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
