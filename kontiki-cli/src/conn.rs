//! Where the broker is, how to reach it and how long to wait: `--amqp-url`,
//! `KONTIKI_AMQP_URL`, `--config`, `--tls-*`.

use crate::cli::TlsArgs;
use crate::exit::Failure;
use kontiki_rt::config::TlsSettings;
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
    pub(crate) tls: TlsSettings,
}

impl Broker {
    /// `url` (from `--amqp-url` or `KONTIKI_AMQP_URL`, clap merges the two), else the config
    /// files' `kontiki.amqp.url`, else [`DEFAULT_URL`]; TLS from the config files'
    /// `kontiki.amqp.tls`, overridden by the `--tls-*` options; timeouts from the config files.
    pub(crate) fn resolve(
        url: Option<String>,
        config: &[PathBuf],
        tls_args: &TlsArgs,
    ) -> Result<Broker, Failure> {
        let (config_url, rpc_timeout, connect_timeout, tls) = if config.is_empty() {
            (
                None,
                Duration::from_secs(10),
                Duration::from_secs(10),
                TlsSettings::default(),
            )
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
                settings.amqp.tls,
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
            tls: tls_with_args(tls, tls_args)?,
        })
    }

    /// A stand-alone Messenger on this broker.
    pub(crate) async fn messenger(&self) -> Result<Messenger, Failure> {
        Messenger::builder(self.url.as_str())
            .client_name(CLIENT_NAME)
            .rpc_timeout(self.rpc_timeout)
            .connect_timeout(self.connect_timeout)
            .tls(self.tls.clone())
            .connect()
            .await
            .map_err(|e| Failure::from_error(&e))
    }
}

/// `tls` (from the config files) with the `--tls-*` options laid over it: any option turns TLS
/// on; a certificate needs its key and a key its certificate.
fn tls_with_args(mut tls: TlsSettings, args: &TlsArgs) -> Result<TlsSettings, Failure> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(_), None) => return Err(Failure::usage("--tls-cert needs --tls-key")),
        (None, Some(_)) => return Err(Failure::usage("--tls-key needs --tls-cert")),
        _ => {}
    }
    if let Some(ca) = &args.tls_ca {
        tls.enabled = true;
        tls.ca_cert = Some(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        tls.enabled = true;
        tls.client_cert = Some(cert.clone());
        tls.client_key = Some(key.clone());
    }
    Ok(tls)
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

        let b = Broker::resolve(Some("amqp://opt/v".into()), &cfg, &TlsArgs::default()).unwrap();
        assert_eq!(b.url, "amqp://opt/v");
        assert_eq!(b.rpc_timeout, Duration::from_secs(3));

        let b = Broker::resolve(None, &cfg, &TlsArgs::default()).unwrap();
        assert_eq!(b.url, "amqp://u:p@cfg-host:5672/v");

        let b = Broker::resolve(None, &[], &TlsArgs::default()).unwrap();
        assert_eq!(
            (b.url.as_str(), b.rpc_timeout),
            (DEFAULT_URL, Duration::from_secs(10))
        );
    }

    #[test]
    fn a_config_without_a_url_keeps_the_default() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "app:\n  x: 1").unwrap();
        let b = Broker::resolve(None, &[f.path().to_path_buf()], &TlsArgs::default()).unwrap();
        assert_eq!(b.url, DEFAULT_URL);
    }

    #[test]
    fn an_unreadable_config_is_a_usage_error() {
        let e = Broker::resolve(
            None,
            &[PathBuf::from("/nonexistent/kontiki.yaml")],
            &TlsArgs::default(),
        )
        .unwrap_err();
        assert_eq!(e.exit, crate::exit::Exit::Usage);
        assert!(e.line.starts_with("CONFIG_ERROR: "), "{}", e.line);
        assert!(e.line.contains("/nonexistent/kontiki.yaml"), "{}", e.line);
    }

    #[test]
    fn tls_comes_from_the_config_and_the_options_override_it() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            "kontiki:\n  amqp:\n    tls:\n      enabled: true\n      ca_cert: /cfg/ca.pem\n      \
             client_cert: /cfg/c.pem\n      client_key: /cfg/c.key"
        )
        .unwrap();
        let cfg = vec![f.path().to_path_buf()];
        let b = Broker::resolve(None, &cfg, &TlsArgs::default()).unwrap();
        assert!(b.tls.enabled);
        assert_eq!(b.tls.ca_cert, Some(PathBuf::from("/cfg/ca.pem")));
        assert_eq!(b.tls.client_key, Some(PathBuf::from("/cfg/c.key")));

        let args = TlsArgs {
            tls_ca: Some("/opt/ca.pem".into()),
            ..TlsArgs::default()
        };
        let b = Broker::resolve(None, &cfg, &args).unwrap();
        assert_eq!(b.tls.ca_cert, Some(PathBuf::from("/opt/ca.pem")));
        assert_eq!(b.tls.client_cert, Some(PathBuf::from("/cfg/c.pem")));

        let b = Broker::resolve(None, &[], &args).unwrap();
        assert!(b.tls.enabled);
        assert_eq!(b.tls.client_cert, None);
        assert!(
            !Broker::resolve(None, &[], &TlsArgs::default())
                .unwrap()
                .tls
                .enabled
        );
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let args = TlsArgs {
            tls_cert: Some("c.pem".into()),
            ..TlsArgs::default()
        };
        let e = Broker::resolve(None, &[], &args).unwrap_err();
        assert_eq!(e.line, "USAGE_ERROR: --tls-cert needs --tls-key");
    }
}
