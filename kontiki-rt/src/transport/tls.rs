//! TLS to the broker from `kontiki.amqp.tls` (`enabled`, `ca_cert`, `client_cert`,
//! `client_key`), as PEM files; `amqps://` URLs use it.

use crate::config::TlsSettings;
use crate::error::{Error, Result};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};

/// The TLS material read from the files the settings name.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsFiles {
    ca_pem: Option<String>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    /// Reads the files of `settings`; `None` when TLS is not enabled.
    pub(crate) fn load(settings: &TlsSettings) -> Result<Option<Self>> {
        if !settings.enabled {
            return Ok(None);
        }
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                Error::Definition(format!(
                    "kontiki.amqp.tls.{what}: cannot read {}: {e}",
                    path.display()
                ))
            })
        };
        let ca_pem = match &settings.ca_cert {
            Some(p) => Some(String::from_utf8(read("ca_cert", p)?).map_err(|_| {
                Error::Definition(format!(
                    "kontiki.amqp.tls.ca_cert: {} is not a PEM text file",
                    p.display()
                ))
            })?),
            None => None,
        };
        let identity = match (&settings.client_cert, &settings.client_key) {
            (Some(cert), Some(key)) => Some((read("client_cert", cert)?, read("client_key", key)?)),
            _ => None,
        };
        Ok(Some(Self { ca_pem, identity }))
    }

    pub(crate) fn to_lapin(&self) -> OwnedTLSConfig {
        OwnedTLSConfig {
            identity: self
                .identity
                .as_ref()
                .map(|(pem, key)| OwnedIdentity::PKCS8 {
                    pem: pem.clone(),
                    key: key.clone(),
                }),
            cert_chain: self.ca_pem.clone(),
        }
    }
}

/// With TLS enabled, an `amqp://` URL becomes `amqps://` (the port stays as written).
pub(crate) fn tls_url(url: &str, tls: bool) -> String {
    url.split(',')
        .map(|u| match u.strip_prefix("amqp://") {
            Some(rest) if tls => format!("amqps://{rest}"),
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_switches_the_scheme() {
        assert_eq!(tls_url("amqp://h:5671/%2f", true), "amqps://h:5671/%2f");
        assert_eq!(tls_url("amqp://h/%2f", false), "amqp://h/%2f");
        assert_eq!(tls_url("amqps://h/%2f", true), "amqps://h/%2f");
    }

    #[test]
    fn unreadable_files_are_named() {
        let s = TlsSettings {
            enabled: true,
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = TlsFiles::load(&s).unwrap_err().to_string();
        assert!(
            e.contains("kontiki.amqp.tls.ca_cert: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
        assert!(TlsFiles::load(&TlsSettings::default()).unwrap().is_none());
    }
}
