//! The README's "Use it in your project" section, kept true: its four blocks written into a
//! crate outside the workspace, built against this checkout and run against RabbitMQ.

use std::collections::BTreeMap;

/// The fenced blocks of the section, by the file name their first line gives.
fn section_files() -> BTreeMap<String, String> {
    let readme =
        std::fs::read_to_string(examples_tests::repo_root().join("README.md")).expect("README.md");
    let start = readme
        .find("## Use it in your project")
        .expect("the README has the section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut files = BTreeMap::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```") || line == "```" {
            continue;
        }
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        let first = body.first().expect("a block with a first line");
        let name = first
            .trim_start_matches("# ")
            .trim_start_matches("//! ")
            .trim_start_matches("// ")
            .to_owned();
        files.insert(name, body.join("\n") + "\n");
    }
    files
}

#[test]
fn the_readme_project_builds_and_runs() {
    let files = section_files();
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["Cargo.toml", "build.rs", "greeter.kontiki", "src/main.rs"]
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let krate = dir.path().join("greeter");
    std::fs::create_dir_all(krate.join("src")).expect("create the crate");
    for (name, body) in &files {
        let body = if name == "Cargo.toml" {
            examples_tests::point_at_checkout(body)
        } else {
            body.clone()
        };
        std::fs::write(krate.join(name), body).expect("write a file");
    }
    let bin = examples_tests::build_outside(&krate, "greeter");
    let out = std::process::Command::new(bin)
        .env("KONTIKI_AMQP_URL", examples_tests::amqp_url())
        .output()
        .expect("run the README's program");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "Hello, Ada!\nrefused: A name is required\n");
}
