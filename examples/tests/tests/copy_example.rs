//! An example folder is a starting point: copied out of the repository, with its path
//! dependencies pointed at the kontiki-rs crates, it builds (its build.rs runs kontiki-codegen
//! on its own `.kontiki` files) and runs.

use examples_tests::{Example, messenger, repo_root};
use kontiki_rt::{CallOptions, RpcError};
use std::path::Path;

/// Copies `from` into `to`, files and folders (the example has no links).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's folder");
    for entry in std::fs::read_dir(from).expect("read the example folder") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("its file type");
        assert!(
            !kind.is_symlink(),
            "{} is a link: a copied example would lose it",
            entry.path().display()
        );
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

#[tokio::test]
async fn api_gateway_copied_out_of_the_repository_builds_and_runs() {
    let root = repo_root();
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(
        !dir.path().starts_with(&root),
        "the copy must live outside the workspace"
    );
    let copy = dir.path().join("my-gateway");
    copy_dir(&root.join("examples/api-gateway"), &copy);

    // What a user does: point the dependencies somewhere else (here at this checkout by
    // absolute path; a user would put versions from crates.io) and name the copy.
    let manifest = std::fs::read_to_string(copy.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        !manifest.contains(".workspace = true") && !manifest.contains("workspace = true"),
        "the example must not inherit from the workspace:\n{manifest}"
    );
    let manifest = examples_tests::point_at_checkout(&manifest)
        .replace("name = \"api-gateway\"", "name = \"my-gateway\"");
    assert!(
        !manifest.contains("../"),
        "a relative path is left:\n{manifest}"
    );
    std::fs::write(copy.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    let bin = examples_tests::build_outside(&copy, "my-gateway");

    // The copy calls rpc-service (the repository's example) as the original does.
    let _upstream = Example::start("rpc-service", &[]).await;
    let broker = dir.path().join("broker.yaml");
    std::fs::write(&broker, "kontiki:\n  amqp:\n    url: ${KONTIKI_AMQP_URL}\n")
        .expect("write broker.yaml");
    let gateway =
        Example::start_binary("my-gateway", &bin, &[copy.join("config.yaml"), broker], &[]).await;
    use kontiki_generated::api_gateway::{ApiGatewayClient, ComputeClientError};
    let client = ApiGatewayClient::new(messenger().await)
        .with_options(CallOptions::default().instance(&gateway.instance_id));
    assert_eq!(client.compute("fast").await.expect("compute"), "ok");
    match client.compute("bad_input").await {
        Err(RpcError::Client {
            error: ComputeClientError::UserInputError { message },
            ..
        }) => assert_eq!(message, "Invalid feature value"),
        other => panic!("expected USER_INPUT_ERROR, got {other:?}"),
    }
    assert_eq!(gateway.stop().await, Some(0));
}
