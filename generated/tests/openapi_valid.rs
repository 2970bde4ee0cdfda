//! Every generated OpenAPI document validates with `openapi-spec-validator` (in the interop
//! venv), and the constants in the generated Rust hold the same text as the files.

mod support;

use std::path::PathBuf;

fn documents() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi");
    let mut docs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    docs.sort();
    docs
}

#[test]
fn every_document_is_valid_openapi() {
    let docs = documents();
    assert!(
        docs.len() >= 3,
        "features-svc v1, v2 and http-simple v1 at least: {docs:?}"
    );
    for doc in &docs {
        let out = std::process::Command::new(support::python())
            .args(["-m", "openapi_spec_validator"])
            .arg(doc)
            .output()
            .expect("run openapi_spec_validator");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(": OK"),
            "{} is not valid OpenAPI:\n{stdout}{}",
            doc.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(doc).unwrap()).unwrap();
        assert_eq!(json["openapi"], "3.1.0", "{}", doc.display());
    }
}

#[test]
fn the_rust_constants_are_the_documents() {
    use kontiki_generated::{features::features, http_simple::http_simple};
    let read = |name: &str| {
        std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("openapi")
                .join(name),
        )
        .unwrap()
    };
    assert_eq!(
        features::OPENAPI_V1,
        read("features-svc.v1.json").trim_end()
    );
    assert_eq!(
        features::OPENAPI_V2,
        read("features-svc.v2.json").trim_end()
    );
    assert_eq!(http_simple::OPENAPI, &[("v1", http_simple::OPENAPI_V1)]);
    let v1: serde_json::Value = serde_json::from_str(http_simple::OPENAPI_V1).unwrap();
    assert_eq!(
        v1["paths"]["/items"]["post"]["responses"]["409"]["description"],
        "conflict happened (`CONFLICT`)"
    );
    assert_eq!(v1["info"]["title"], "http-simple");
}
