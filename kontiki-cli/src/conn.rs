//! Where the broker is and how long to wait: `--amqp-url`, `KONTIKI_AMQP_URL`, `--config`.

use crate::exit::Failure;
use kontiki_rt::{Config, Messenger, Settings};
use std::path::PathBuf;
use std::time::Duration;

/// The URL used when neither the command line, the environment nor a config file names one.
pub(crate) const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The stand-alone client name: requests carry `service_name: kontiki-standalone-kontiki_cli`.
const CLIENT_NAME: &str = "kontiki_cli";

/// The broker settings of one run.
#[derive(Debug, Clone)]
pub(crate) struct Broker {
    pub(crate) url: String,
    pub(crate) rpc_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

impl Broker {
    /// `url` (from `--amqp-url` or `KONTIKI_AMQP_URL`, clap merges the two), else the config
    /// files' `kontiki.amqp.url`, else [`DEFAULT_URL`]; timeouts from the config files.
    pub(crate) fn resolve(url: Option<String>, config: &[PathBuf]) -> Result<Broker, Failure> {
        let (config_url, rpc_timeout, connect_timeout) = if config.is_empty() {
            (None, Duration::from_secs(10), Duration::from_secs(10))
        } else {
            let cfg = Config::load(config)
                .map_err(|e| Failure::new(crate::exit::Exit::Usage, "CONFIG_ERROR", e))?;
            let settings = Settings::from_config(&cfg)
                .map_err(|e| Failure::new(crate::exit::Exit::Usage, "CONFIG_ERROR", e))?;
            let url = cfg
                .value("kontiki.amqp.url")
                .map(|_| settings.amqp.url.clone());
            (
                url,
                settings.amqp.rpc_timeout,
                settings.amqp.connect_timeout,
            )
        };
        let url = url
            .filter(|u| !u.trim().is_empty())
            .or(config_url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        Ok(Broker {
            url,
            rpc_timeout,
            connect_timeout,
        })
    }

    /// A stand-alone Messenger on this broker.
    pub(crate) async fn messenger(&self) -> Result<Messenger, Failure> {
        Messenger::builder(self.url.as_str())
            .client_name(CLIENT_NAME)
            .rpc_timeout(self.rpc_timeout)
            .connect_timeout(self.connect_timeout)
            .connect()
            .await
            .map_err(|e| Failure::from_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn the_url_comes_from_the_option_then_the_config_then_the_default() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "kontiki:\n  amqp:\n    url: amqp://u:p@cfg-host:5672/v\n    rpc:\n      timeout: 3"
        )
        .unwrap();
        let cfg = vec![f.path().to_path_buf()];

        let b = Broker::resolve(Some("amqp://opt/v".into()), &cfg).unwrap();
        assert_eq!(b.url, "amqp://opt/v");
        assert_eq!(b.rpc_timeout, Duration::from_secs(3));

        let b = Broker::resolve(None, &cfg).unwrap();
        assert_eq!(b.url, "amqp://u:p@cfg-host:5672/v");

        let b = Broker::resolve(None, &[]).unwrap();
        assert_eq!(
            (b.url.as_str(), b.rpc_timeout),
            (DEFAULT_URL, Duration::from_secs(10))
        );
    }

    #[test]
    fn a_config_without_a_url_keeps_the_default() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "app:\n  x: 1").unwrap();
        let b = Broker::resolve(None, &[f.path().to_path_buf()]).unwrap();
        assert_eq!(b.url, DEFAULT_URL);
    }

    #[test]
    fn an_unreadable_config_is_a_usage_error() {
        let e = Broker::resolve(None, &[PathBuf::from("/nonexistent/kontiki.yaml")]).unwrap_err();
        assert_eq!(e.exit, crate::exit::Exit::Usage);
        assert!(e.line.starts_with("CONFIG_ERROR: "), "{}", e.line);
        assert!(e.line.contains("/nonexistent/kontiki.yaml"), "{}", e.line);
    }
}
