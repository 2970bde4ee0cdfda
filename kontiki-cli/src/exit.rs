//! Exit codes and the one error type of the commands.

use kontiki_rt::{Error, RpcError};
use std::process::ExitCode;

/// The exit codes of `kontiki`, shown by `kontiki --help` (keep docs/cli.md in step).
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  any other failure (invalid reply, refused publish, broker error)
  2  usage: bad arguments, an argument that is not JSON, a config file that cannot be read
  3  the RPC returned a client error (rpc_error); stderr: `CODE: message`
  4  the RPC failed on the server (INTERNAL_ERROR); stderr: `CODE: message`
  5  no reply within the timeout (RPC_TIMEOUT)
  6  unknown service: no queue takes requests for it (UNKNOWN_SERVICE)
  7  unknown method, or unknown instance with --instance (UNKNOWN_METHOD)
  8  the broker could not be reached or the connection was lost (CONNECTION_FAILED, CONNECTION_LOST)
  9  publish --mandatory: no queue is bound for the event type (UNROUTABLE)

Errors go to stderr as one line that starts with the code, so scripts can cut it:
  kontiki call rpc-service rpc_example '\"bad_input\"' 2>&1 >/dev/null | cut -d: -f1";

/// What a command ended with; the discriminant is the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Any other failure.
    Failure = 1,
    /// Bad command line or config file.
    Usage = 2,
    /// The RPC returned a client error.
    ClientError = 3,
    /// The RPC failed on the server.
    ServerError = 4,
    /// No reply within the timeout.
    Timeout = 5,
    /// No queue takes requests for the service.
    UnknownService = 6,
    /// The service has no such method (or no such instance).
    UnknownMethod = 7,
    /// The broker could not be reached, or the connection was lost.
    Connection = 8,
    /// A mandatory publish that no queue took.
    Unroutable = 9,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// A failed command: its exit code and the line printed on stderr (`CODE: message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) exit: Exit,
    pub(crate) line: String,
}

impl Failure {
    pub(crate) fn new(exit: Exit, code: &str, message: impl std::fmt::Display) -> Failure {
        Failure {
            exit,
            line: format!("{code}: {message}"),
        }
    }

    /// A usage error (exit 2).
    pub(crate) fn usage(message: impl std::fmt::Display) -> Failure {
        Failure::new(Exit::Usage, "USAGE_ERROR", message)
    }

    /// An error of a local runtime operation (connecting, publishing).
    pub(crate) fn from_error(e: &Error) -> Failure {
        match e {
            Error::Connect { .. }
            | Error::Tls { .. }
            | Error::ConnectTimeout { .. }
            | Error::NotConnected { .. } => Failure::new(Exit::Connection, "CONNECTION_FAILED", e),
            Error::Closed => Failure::new(Exit::Connection, "CONNECTION_LOST", e),
            Error::Unroutable { .. } => Failure::new(Exit::Unroutable, "UNROUTABLE", e),
            Error::Config(_) => Failure::new(Exit::Usage, "CONFIG_ERROR", e),
            Error::ReservedHeaders(_) | Error::InvalidHeader(_) | Error::InvalidName { .. } => {
                Failure::usage(e)
            }
            Error::Nacked { .. } => Failure::new(Exit::Failure, "NACKED", e),
            _ => Failure::new(Exit::Failure, "ERROR", e),
        }
    }

    /// Why a call returned no result.
    pub(crate) fn from_rpc(e: &RpcError) -> Failure {
        match e {
            RpcError::Client { error, .. } => {
                Failure::remote(Exit::ClientError, "CLIENT_ERROR", error)
            }
            RpcError::Server { error, .. } => {
                Failure::remote(Exit::ServerError, "SERVER_ERROR", error)
            }
            RpcError::Timeout {
                service,
                method,
                timeout,
            } => Failure::new(
                Exit::Timeout,
                "RPC_TIMEOUT",
                format_args!(
                    "no reply from {service}.{method} within {} s",
                    timeout.as_secs_f64()
                ),
            ),
            RpcError::UnknownService { .. } => {
                Failure::new(Exit::UnknownService, "UNKNOWN_SERVICE", e)
            }
            RpcError::UnknownMethod { .. } => {
                Failure::new(Exit::UnknownMethod, "UNKNOWN_METHOD", e)
            }
            RpcError::ConnectionLost { .. } => Failure::new(Exit::Connection, "CONNECTION_LOST", e),
            RpcError::InvalidReply { .. } => Failure::new(Exit::Failure, "INVALID_REPLY", e),
            RpcError::Transport(inner) => Failure::from_error(inner),
            _ => Failure::new(Exit::Failure, "ERROR", e),
        }
    }

    /// `CODE: message` of an error that crossed the wire; `fallback` when it had no code.
    fn remote(exit: Exit, fallback: &str, error: &kontiki_rt::RemoteError) -> Failure {
        let code = error.code.as_deref().unwrap_or(fallback);
        Failure {
            exit,
            line: match &error.message {
                Some(m) => format!("{code}: {m}"),
                None => code.to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kontiki_rt::RemoteError;
    use std::time::Duration;

    fn client(code: Option<&str>, message: Option<&str>) -> RpcError {
        RpcError::Client {
            service: "rpc-service".into(),
            method: "rpc_example".into(),
            error: RemoteError {
                code: code.map(str::to_owned),
                message: message.map(str::to_owned),
            },
        }
    }

    #[test]
    fn a_client_error_starts_with_its_code() {
        let f = Failure::from_rpc(&client(
            Some("USER_INPUT_ERROR"),
            Some("Invalid feature value"),
        ));
        assert_eq!(f.exit, Exit::ClientError);
        assert_eq!(f.line, "USER_INPUT_ERROR: Invalid feature value");
        assert_eq!(Failure::from_rpc(&client(Some("X"), None)).line, "X");
        assert_eq!(
            Failure::from_rpc(&client(None, Some("m"))).line,
            "CLIENT_ERROR: m"
        );
    }

    #[test]
    fn each_kind_of_failure_has_its_exit_code() {
        let timeout = RpcError::Timeout {
            service: "s".into(),
            method: "m".into(),
            timeout: Duration::from_millis(1500),
        };
        let f = Failure::from_rpc(&timeout);
        assert_eq!(
            (f.exit, f.line.as_str()),
            (Exit::Timeout, "RPC_TIMEOUT: no reply from s.m within 1.5 s")
        );
        let unknown = RpcError::UnknownService {
            service: "nobody".into(),
            method: "x".into(),
        };
        assert_eq!(Failure::from_rpc(&unknown).exit, Exit::UnknownService);
        let method = RpcError::UnknownMethod {
            service: "s".into(),
            method: "x".into(),
            instance_id: None,
        };
        assert_eq!(Failure::from_rpc(&method).exit, Exit::UnknownMethod);
        let unroutable = Error::Unroutable {
            exchange: "event_exchange".into(),
            routing_key: "k".into(),
        };
        assert_eq!(Failure::from_error(&unroutable).exit, Exit::Unroutable);
        // The codes the help text promises.
        for (exit, n) in [
            (Exit::Failure, 1),
            (Exit::Usage, 2),
            (Exit::ClientError, 3),
            (Exit::ServerError, 4),
            (Exit::Timeout, 5),
            (Exit::UnknownService, 6),
            (Exit::UnknownMethod, 7),
            (Exit::Connection, 8),
            (Exit::Unroutable, 9),
        ] {
            assert_eq!(exit as u8, n);
            assert!(EXIT_CODES_HELP.contains(&format!("  {n}  ")), "{n}");
        }
    }
}
