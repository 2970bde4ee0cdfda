//! The `kontiki` command line never prints a broker password (issue 18, item 2): connection
//! errors against a closed port and a refused login, with debug logging on, name the broker
//! with the password hidden.

const PASSWORD: &str = "Cl1:p@ss,wd";
const ENCODED: &str = "Cl1%3Ap%40ss%2Cwd";

fn run(url: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kontiki"))
        .arg("--amqp-url")
        .arg(url)
        .args(args)
        .env("RUST_LOG", "debug")
        .env_remove("KONTIKI_AMQP_URL")
        .output()
        .expect("run kontiki");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn connection_errors_hide_the_password() {
    let closed = format!("amqp://someone:{ENCODED}@127.0.0.1:1/%2f");
    let refused = format!(
        "amqp://nobody-{}:{ENCODED}@127.0.0.1:5672/%2f",
        std::process::id()
    );
    for (url, args) in [
        (&closed, vec!["services"]),
        (&closed, vec!["call", "svc", "m"]),
        (&refused, vec!["publish", "a.b", "{}"]),
        (&refused, vec!["listen", "a", "--count", "1"]),
    ] {
        let (code, text) = run(url, &args);
        assert_eq!(code, Some(8), "{args:?}: {text}");
        assert!(text.contains(":***@127.0.0.1"), "{args:?}: {text}");
        for secret in [PASSWORD, ENCODED, "p@ss", "p%40ss"] {
            assert!(
                !text.contains(secret),
                "{args:?} printed {secret:?}: {text}"
            );
        }
    }
}
