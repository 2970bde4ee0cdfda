//! Several broker URLs (`kontiki.amqp.url` as a list, `KONTIKI_AMQP_URL` with commas): a
//! service and a stand-alone Messenger connect to the first of them that answers, whatever
//! their order, and a list with no answering broker fails naming the URLs it tried.

mod support;

use kontiki_rt::{Call, Config, Messenger, RpcEntrypoint, Service};
use serde_json::{Map, json};

/// Nothing listens on port 1 of the loopback: connecting is refused at once.
const DEAD: &str = "amqp://guest:guest@127.0.0.1:1/%2f";

#[tokio::test]
async fn the_first_broker_that_answers_is_used() {
    let name = support::unique("brokers");
    let live = support::amqp_url();
    // A YAML list with a dead broker first and last: the service must find the live one,
    // whichever index its process starts at.
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url:\n      - \"{DEAD}\"\n      - \"{live}\"\n      - \"{DEAD}\"\n    connect_timeout: 2\n  registration:\n    disable: true\n"
    );
    let config = Config::from_yaml_str("list.yaml", &yaml).expect("config");
    let settings = kontiki_rt::Settings::from_config(&config).expect("settings");
    assert_eq!(settings.amqp.url, format!("{DEAD},{live},{DEAD}"));
    let svc = Service::builder(name.as_str())
        .rpc(RpcEntrypoint::new("echo", |c: Call| async move {
            Ok(c.args.into_iter().next().unwrap_or_default())
        }))
        .build()
        .expect("definition")
        .start(config)
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    // A comma-separated list, as KONTIKI_AMQP_URL gives it.
    let client = Messenger::connect(format!("{DEAD}, {live}"))
        .await
        .expect("the messenger finds the live broker");
    let v = client
        .call(&name, "echo", vec![json!(7)], Map::new())
        .await
        .expect("call");
    assert_eq!(v, json!(7));
    client.close().await;
    svc.shutdown().await;
}

#[tokio::test]
async fn a_list_without_a_live_broker_fails() {
    let err = Messenger::builder(format!("{DEAD},amqp://guest:secret@127.0.0.1:2/%2f"))
        .connect_timeout(std::time::Duration::from_secs(1))
        .connect()
        .await
        .expect_err("no broker answers");
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:"), "{text}");
    assert!(!text.contains("secret"), "the password is redacted: {text}");
}

#[test]
fn a_list_with_an_empty_url_is_a_config_error() {
    let config = Config::from_yaml_str(
        "bad.yaml",
        "kontiki:\n  amqp:\n    url: \"amqp://a/%2f,,amqp://b/%2f\"\n",
    )
    .expect("yaml");
    let err = kontiki_rt::Settings::from_config(&config).expect_err("empty entry");
    assert!(err.to_string().contains("kontiki.amqp.url"), "{err}");
}
