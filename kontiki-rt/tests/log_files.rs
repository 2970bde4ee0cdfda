//! Kontiki's log files (`logging.directory`, issue 17 item 3): each service instance writes
//! `<directory>/<service>-<12 hex>.log` in Kontiki's default format, with `[flow=<id>]` on the
//! lines logged while handling a message, as kontiki-tui's Logs tab and flow excerpts read it.

mod support;

use kontiki_rt::{Call, CallOptions, RpcEntrypoint, Service};
use serde_json::json;

fn config(name: &str, dir: &std::path::Path) -> kontiki_rt::Config {
    let yaml = format!(
        "kontiki:\n  service_name: {name}\n  amqp:\n    url: \"{}\"\n  registration:\n    disable: true\n  http:\n    disable: true\nlogging:\n  directory: \"{}\"\n",
        support::amqp_url(),
        dir.display()
    );
    kontiki_rt::Config::from_yaml_str("logs.yaml", &yaml).expect("config")
}

fn service(name: &str, word: &'static str) -> Service {
    Service::builder(name)
        .rpc(RpcEntrypoint::new("work", move |_c: Call| async move {
            tracing::info!(n = 7, "{word} at work");
            tracing::debug!("below INFO: not in the file");
            Ok(json!(word))
        }))
        .build()
        .expect("service")
}

/// `YYYY-MM-DD HH:MM:SS,mmm - <12 hex> - LEVEL - <flow, padded to 19> - message`.
fn parse(line: &str) -> Option<(&str, &str, &str, &str)> {
    let (stamp, rest) = line.split_at_checked(23)?;
    let ok_stamp = stamp.len() == 23
        && stamp.as_bytes()[4] == b'-'
        && stamp.as_bytes()[10] == b' '
        && stamp.as_bytes()[19] == b','
        && stamp.chars().filter(char::is_ascii_digit).count() == 17;
    if !ok_stamp {
        return None;
    }
    let mut parts = rest.strip_prefix(" - ")?.splitn(4, " - ");
    let short = parts.next()?;
    let level = parts.next()?;
    let flow = parts.next()?;
    let message = parts.next()?;
    Some((short, level, flow, message))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_writes_kontiki_log_lines_with_the_flow() {
    kontiki_rt::cli::init_tracing();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (support::unique("logs-a"), support::unique("logs-b"));
    let ra = service(&a, "alpha")
        .start(config(&a, dir.path()))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let rb = service(&b, "beta")
        .start(config(&b, dir.path()))
        .await
        .unwrap_or_else(|e| panic!("{}", support::no_broker(e)));
    let m = support::messenger().await;
    for (name, flow) in [(&a, "logflowalpha1"), (&b, "logflowbeta1")] {
        m.call_raw(
            name,
            "work",
            br#"{"args": [], "kwargs": {}}"#.to_vec(),
            CallOptions::default().flow_id(flow),
        )
        .await
        .expect("work");
    }
    let (ia, ib) = (
        ra.identity().instance_id.to_string(),
        rb.identity().instance_id.to_string(),
    );
    ra.shutdown().await;
    rb.shutdown().await;
    m.close().await;

    for (name, iid, word, flow, other) in [
        (&a, &ia, "alpha", "logflowalpha1", "beta"),
        (&b, &ib, "beta", "logflowbeta1", "alpha"),
    ] {
        let path = dir.path().join(kontiki_rt::log_file_name(name, iid));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
        let short: String = iid.chars().filter(|c| *c != '-').take(12).collect();
        let lines: Vec<_> = text.lines().collect();
        for line in &lines {
            let (s, level, _, _) =
                parse(line).unwrap_or_else(|| panic!("not Kontiki's format: {line:?}"));
            assert_eq!(s, short, "{line}");
            assert!(["INFO", "WARNING", "ERROR"].contains(&level), "{line}");
        }
        let work: Vec<_> = lines
            .iter()
            .filter_map(|l| parse(l))
            .filter(|(_, _, _, msg)| msg.contains("at work"))
            .collect();
        assert_eq!(
            work.len(),
            1,
            "one handler line in {}:\n{text}",
            path.display()
        );
        let (_, level, flow_col, msg) = work[0];
        assert_eq!(level, "INFO");
        assert_eq!(flow_col, format!("{:<19}", format!("[flow={flow}]")));
        assert_eq!(msg, format!("{word} at work n=7"));
        assert!(!text.contains(&format!("{other} at work")), "{text}");
        assert!(!text.contains("below INFO"), "{text}");
    }
}
