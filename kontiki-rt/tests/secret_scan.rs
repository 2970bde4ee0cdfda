//! No secret in output (issue 18, item 2): a broker user with a known password runs a service
//! (as a process, logging at debug level, lapin included) and a stand-alone messenger, calls,
//! publishes, fails to connect and prints its configuration; the logs, the error messages and
//! the `Debug` strings of the run are scanned for the password in every form it was written.

mod support;

use kontiki_rt::config::Settings;
use kontiki_rt::{Config, Messenger};
use std::io::Write as _;
use std::process::Stdio;
use tokio::io::AsyncBufReadExt as _;

/// Forms of `password` that must never show: as written, percent-encoded in a URL, and its
/// distinctive middle part (so a redaction that cut at the wrong `:` or `@` is caught too).
fn forms(password: &str, encoded: &str) -> Vec<String> {
    vec![
        password.to_owned(),
        encoded.to_owned(),
        password[4..password.len() - 4].to_owned(),
    ]
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{what} shows the password ({s:?}):\n{text}"
        );
    }
}

/// `url` with `user:password@` put in (the password percent-encoded).
fn with_user(url: &str, user: &str, encoded: &str, vhost: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap_or(host);
    format!("{scheme}://{user}:{encoded}@{host}/{vhost}")
}

#[tokio::test]
async fn a_known_password_appears_in_no_log_error_or_debug_output() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let user = format!("scan-{}", &id[..8]);
    let password = format!("Pw:{}@x,y/{}", &id[..12], &id[20..28]);
    let encoded = password
        .replace(':', "%3A")
        .replace('@', "%40")
        .replace(',', "%2C")
        .replace('/', "%2F");
    let secrets = forms(&password, &encoded);
    let vhost = format!("scan-{}", &id[..8]);
    support::rabbitmqctl(&["-q", "add_user", &user, &password]);
    support::rabbitmqctl(&["-q", "add_vhost", &vhost]);
    support::rabbitmqctl(&[
        "-q",
        "set_permissions",
        "-p",
        &vhost,
        &user,
        ".*",
        ".*",
        ".*",
    ]);
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::panic::catch_unwind(|| {
                support::rabbitmqctl(&["-q", "delete_vhost", &self.1]);
                support::rabbitmqctl(&["-q", "delete_user", &self.0]);
            });
        }
    }
    let _cleanup = Cleanup(user.clone(), vhost.clone());
    let url = with_user(&support::amqp_url(), &user, &encoded, &vhost);

    // A service process logging at debug level, lapin and every other crate included.
    let yaml = format!(
        "kontiki:\n  service_name: scan\n  amqp:\n    url: \"{url}\"\n  registration:\n    disable: true\napp:\n  db_password: \"{password}\"\n"
    );
    let mut file = tempfile::NamedTempFile::new().expect("temp config");
    file.write_all(yaml.as_bytes()).expect("write config");
    let mut child = tokio::process::Command::new(support::example_bin("testsvc"))
        .arg("--config")
        .arg(file.path())
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn testsvc");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut log = String::new();
    let started = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
            if line.contains("service started") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(started, Ok(true)), "testsvc did not start:\n{log}");

    // A stand-alone messenger: a call, a publish, and their Debug strings.
    let messenger = Messenger::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let reply = messenger
        .call(
            "scan",
            "double",
            vec![serde_json::json!(21)],
            serde_json::Map::new(),
        )
        .await
        .expect("double");
    assert_eq!(reply, 42);
    messenger
        .publish("scan.happened", &serde_json::json!({"n": 1}))
        .await
        .expect("publish");
    let mut debug = format!("{messenger:?}\n");

    // The config, its settings and a connection that fails, with the password in each.
    let config = Config::from_yaml_str("scan.yaml", &yaml).expect("config");
    debug.push_str(&format!(
        "{config:?}\n{:?}\n",
        Settings::from_config(&config)
    ));
    debug.push_str(&serde_json::to_string(&config.redacted()).expect("json"));
    let refused = with_user("amqp://127.0.0.1:1", &user, &encoded, &vhost);
    match Messenger::connect(&refused).await {
        Ok(_) => panic!("port 1 answered"),
        Err(e) => debug.push_str(&format!("{e}\n{e:?}\n")),
    }
    let wrong_vhost = with_user(&support::amqp_url(), &user, &encoded, "no-such-vhost");
    match Messenger::connect(&wrong_vhost).await {
        Ok(_) => panic!("a vhost that does not exist accepted the connection"),
        Err(e) => debug.push_str(&format!("{e}\n{e:?}\n")),
    }
    assert_clean("Debug and error output", &debug, &secrets);
    messenger.close().await;

    // Stop the service and read the rest of its log.
    let pid = child.id().expect("pid").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        log.push('\n');
    }
    let status = child.wait().await.expect("wait");
    assert!(status.success(), "testsvc exit: {status}\n{log}");
    // A scan of next to nothing proves nothing: the log has the run and lapin's debug lines.
    assert!(log.contains("service started"), "{log}");
    assert!(
        log.contains("lapin::"),
        "lapin logged nothing at debug:\n{log}"
    );
    assert!(log.contains("shutdown requested"), "{log}");
    assert_clean("the service's debug log", &log, &secrets);
}
