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
    /// The files read, named in connection errors.
    pub(crate) ca_path: Option<std::path::PathBuf>,
    pub(crate) cert_path: Option<std::path::PathBuf>,
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
        Ok(Some(Self {
            ca_pem,
            cert_path: identity.as_ref().and(settings.client_cert.clone()),
            identity,
            ca_path: settings.ca_cert.clone(),
        }))
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

/// The error for a failed connection to `url` (password hidden): [`Error::Tls`] when the TLS
/// layer failed, saying what that means with the files of `tls`; [`Error::Connect`] otherwise.
pub(crate) fn connect_error(url: String, source: lapin::Error, tls: Option<&TlsFiles>) -> Error {
    match tls_reason(&source, tls) {
        Some(reason) => Error::Tls {
            url,
            reason: reason.into_boxed_str(),
            source,
        },
        None => Error::Connect { url, source },
    }
}

/// The TLS library's error inside a lapin I/O error (lapin's rustls-connector wraps it).
fn rustls_error(e: &lapin::Error) -> Option<&rustls::Error> {
    let lapin::ErrorKind::IOError(io) = e.kind() else {
        return None;
    };
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// What a TLS failure means, in words; `None` when `e` is not a TLS failure.
fn tls_reason(e: &lapin::Error, tls: Option<&TlsFiles>) -> Option<String> {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as Tls};
    let Some(r) = rustls_error(e) else {
        return closed_in_handshake(e, tls?);
    };
    let ca = match tls.and_then(|t| t.ca_path.as_ref()) {
        Some(p) => format!("the configured CA {}", p.display()),
        None => "the system's trusted roots (no CA file is configured: \
                 `kontiki.amqp.tls.ca_cert`, `kontiki --tls-ca`)"
            .to_owned(),
    };
    let client_cert = tls.and_then(|t| t.cert_path.as_ref());
    Some(match r {
        Tls::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature) => {
            format!("the server certificate is not trusted by {ca} ({r})")
        }
        Tls::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            format!(
                "the server certificate does not match the host name of the URL ({r}); \
                 connect with a host name the certificate names"
            )
        }
        Tls::InvalidCertificate(
            Cert::Expired
            | Cert::ExpiredContext { .. }
            | Cert::NotValidYet
            | Cert::NotValidYetContext { .. },
        ) => format!("the server certificate is outside its validity period ({r})"),
        Tls::InvalidCertificate(_) => format!("the server certificate was refused ({r})"),
        Tls::AlertReceived(alert) => match (alert, client_cert) {
            (Alert::CertificateRequired | Alert::HandshakeFailure, None) => format!(
                "the broker requires a client certificate (mutual TLS) and none is configured \
                 (`kontiki.amqp.tls.client_cert` and `client_key`, `kontiki --tls-cert` and \
                 `--tls-key`) ({r})"
            ),
            (
                Alert::UnknownCA
                | Alert::BadCertificate
                | Alert::CertificateUnknown
                | Alert::UnsupportedCertificate
                | Alert::CertificateExpired
                | Alert::CertificateRevoked
                | Alert::AccessDenied,
                Some(cert),
            ) => format!(
                "the broker refused the client certificate {} ({r}): it must be signed by a \
                 CA the broker trusts",
                cert.display()
            ),
            _ => format!("the broker ended the TLS handshake ({r})"),
        },
        Tls::InvalidMessage(_) => {
            format!("the server did not answer in TLS ({r}): is this the broker's amqps port?")
        }
        _ => format!("the TLS handshake failed ({r})"),
    })
}

/// A TLS connection the broker closed while connecting. With TLS 1.3 the broker judges the
/// client certificate after the client finished its handshake, and it may close the socket
/// before the client reads its alert: then all there is is a reset, which says what it may mean.
fn closed_in_handshake(e: &lapin::Error, tls: &TlsFiles) -> Option<String> {
    use std::io::ErrorKind as Io;
    let lapin::ErrorKind::IOError(io) = e.kind() else {
        return None;
    };
    if !matches!(
        io.kind(),
        Io::ConnectionReset | Io::UnexpectedEof | Io::BrokenPipe | Io::ConnectionAborted
    ) {
        return None;
    }
    Some(match &tls.cert_path {
        Some(cert) => format!(
            "the broker closed the connection during the TLS handshake ({io}): it may have \
             refused the client certificate {} (it must be signed by a CA the broker trusts)",
            cert.display()
        ),
        None => format!(
            "the broker closed the connection during the TLS handshake ({io}): it may require a \
             client certificate (mutual TLS), and none is configured \
             (`kontiki.amqp.tls.client_cert` and `client_key`, `kontiki --tls-cert` and \
             `--tls-key`)"
        ),
    })
}

/// With TLS enabled, an `amqp://` URL becomes `amqps://` (the port stays as written).
pub(crate) fn tls_url(url: &str, tls: bool) -> String {
    url.split(',')
        .map(str::trim)
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
        assert_eq!(
            tls_url("amqp://a/%2f, amqp://b/%2f", true),
            "amqps://a/%2f,amqps://b/%2f"
        );
    }

    /// A lapin error as a failed rustls handshake gives it.
    fn handshake_error(e: rustls::Error) -> lapin::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e).into()
    }

    fn files(cert: bool) -> TlsFiles {
        TlsFiles {
            ca_path: Some("/etc/kontiki/ca.pem".into()),
            cert_path: cert.then(|| "/etc/kontiki/client.pem".into()),
            ..TlsFiles::default()
        }
    }

    #[test]
    fn tls_failures_are_explained() {
        use rustls::{AlertDescription, CertificateError};
        let url = || "amqps://u:***@h:5671/%2f".to_owned();
        let text = |e: rustls::Error, f: Option<&TlsFiles>| {
            let err = connect_error(url(), handshake_error(e), f);
            assert!(matches!(err, Error::Tls { .. }), "{err:?}");
            err.to_string()
        };
        let t = text(
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            Some(&files(false)),
        );
        assert!(
            t.starts_with(
                "TLS with the broker at amqps://u:***@h:5671/%2f failed: the server \
                 certificate is not trusted by the configured CA /etc/kontiki/ca.pem"
            ),
            "{t}"
        );
        let t = text(
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
            None,
        );
        assert!(t.contains("the system's trusted roots"), "{t}");
        let t = text(
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            Some(&files(false)),
        );
        assert!(t.contains("does not match the host name of the URL"), "{t}");
        // The broker requires a client certificate (fail_if_no_peer_cert) and none was sent.
        let t = text(
            rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
            Some(&files(false)),
        );
        assert!(
            t.contains("the broker requires a client certificate"),
            "{t}"
        );
        let t = text(
            rustls::Error::AlertReceived(AlertDescription::UnknownCA),
            Some(&files(true)),
        );
        assert!(
            t.contains("the broker refused the client certificate /etc/kontiki/client.pem"),
            "{t}"
        );
    }

    #[test]
    fn other_connection_errors_stay_connect_errors() {
        let refused = || -> lapin::Error {
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()
        };
        let e = connect_error("amqp://h/%2f".to_owned(), refused(), None);
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        let e = connect_error("amqps://h/%2f".to_owned(), refused(), Some(&files(true)));
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    }

    #[test]
    fn a_reset_in_the_tls_handshake_names_the_client_certificate() {
        let reset =
            || -> lapin::Error { std::io::Error::from(std::io::ErrorKind::ConnectionReset).into() };
        let e = connect_error("amqps://h/%2f".to_owned(), reset(), Some(&files(true))).to_string();
        assert!(
            e.contains("it may have refused the client certificate /etc/kontiki/client.pem"),
            "{e}"
        );
        let e = connect_error("amqps://h/%2f".to_owned(), reset(), Some(&files(false))).to_string();
        assert!(e.contains("it may require a client certificate"), "{e}");
        // Without TLS a reset is only a reset.
        let e = connect_error("amqp://h/%2f".to_owned(), reset(), None);
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
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
