//! The command line (clap derive). Field docs are the `--help` text.

use crate::args;
use crate::exit::EXIT_CODES_HELP;
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Call RPCs, publish and tap events, and look at the registry of Kontiki services (Rust or
/// Python) from the shell.
#[derive(Debug, Parser)]
#[command(name = "kontiki", version, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    /// Broker URL. Default: KONTIKI_AMQP_URL, else `kontiki.amqp.url` of the --config files,
    /// else amqp://guest:guest@127.0.0.1:5672/%2f
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "KONTIKI_AMQP_URL",
        hide_env_values = true
    )]
    pub(crate) amqp_url: Option<String>,

    /// A Kontiki YAML config file to read `kontiki.amqp.url`, `kontiki.amqp.tls` and
    /// `kontiki.amqp.rpc.timeout` from; repeat to merge several, as services do
    #[arg(long = "config", global = true, value_name = "FILE")]
    pub(crate) config: Vec<PathBuf>,

    /// TLS options; they override `kontiki.amqp.tls` of the --config files.
    #[command(flatten)]
    pub(crate) tls: TlsArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// TLS to the broker, like `kontiki.amqp.tls`: any of these turns TLS on (`amqp://` becomes
/// `amqps://`).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TlsArgs {
    /// Verify the broker's certificate against this CA bundle (PEM) instead of the system's
    /// trusted roots; turns TLS on
    #[arg(long, global = true, value_name = "FILE", env = "KONTIKI_TLS_CA")]
    pub(crate) tls_ca: Option<PathBuf>,

    /// Present this client certificate (PEM) for mutual TLS; needs --tls-key
    #[arg(long, global = true, value_name = "FILE", env = "KONTIKI_TLS_CERT")]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert
    #[arg(long, global = true, value_name = "FILE", env = "KONTIKI_TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Call SERVICE.METHOD and print its result as JSON on stdout
    #[command(after_help = "\
Each ARG is one JSON value: 21, '\"text\"', '{\"a\": 1}', '[1, 2]', null.

Examples:
  kontiki call compute-api compute 21
  kontiki call rpc-service rpc_example '\"bad_input\"'
  kontiki call orders get --kwargs '{\"order_id\": 7}' --header tenant=t1 --timeout 2")]
    Call(CallArgs),

    /// Publish an event on event_exchange and wait for the broker's confirm
    #[command(after_help = "\
Example:
  kontiki publish thing_happened '{\"id\": 7}' --header tenant=t1")]
    Publish(PublishArgs),

    /// Print the events that pass on event_exchange, one line each, as they come (a tap)
    #[command(after_help = "\
PATTERN is a topic pattern: `*` matches one dot-separated word, `#` any number of them.
The tap's queue is exclusive and goes away with the command. `listening on PATTERN` is
written to stderr once the queue is bound.

Example:
  kontiki listen 'orders.#' --json --count 10")]
    Listen(ListenArgs),

    /// List the services and instances the registry knows (ServiceRegistry.get_services)
    Services(ServicesArgs),

    /// List, replay or drop the failed messages of a competing event handler, through the
    /// registry
    #[command(subcommand)]
    Failed(FailedCommand),

    /// Print a running service's contract as `.kontiki` text, from what the registry knows
    #[command(after_help = "\
The registry knows names, modes and schedules but no types: payloads and results are `json`,
RPCs have no parameters, path parameters are `string`; the header comment lists every
placeholder. The output checks with kontiki-codegen and is formatted.

Example:
  kontiki describe proto-svc > proto_svc.kontiki && kontiki-codegen check proto_svc.kontiki")]
    Describe(DescribeArgs),

    /// Print the shell completion script for SHELL on stdout
    #[command(after_help = "\
Examples:
  kontiki completions bash > ~/.local/share/bash-completion/completions/kontiki
  kontiki completions zsh > ~/.zfunc/_kontiki
  kontiki completions fish > ~/.config/fish/completions/kontiki.fish")]
    Completions(CompletionsArgs),

    /// Write the manual pages (roff): `kontiki.1` and one `kontiki-COMMAND.1` per command
    #[command(after_help = "\
Example:
  kontiki man --out /usr/local/share/man/man1 && man kontiki-call")]
    Man(ManArgs),
}

/// `kontiki completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// `kontiki man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The folder to write the pages into (made when missing); without it, kontiki.1 goes to
    /// stdout
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

/// `kontiki call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The service name (`kontiki.service_name` of the service)
    pub(crate) service: String,

    /// The RPC method
    pub(crate) method: String,

    /// Positional arguments, each one JSON value
    #[arg(value_name = "ARG", value_parser = args::json_value, allow_negative_numbers = true)]
    pub(crate) args: Vec<Value>,

    /// Keyword arguments, as one JSON object
    #[arg(long, value_name = "JSON", value_parser = args::json_object)]
    pub(crate) kwargs: Option<Map<String, Value>>,

    /// Seconds to wait for the reply (default: `kontiki.amqp.rpc.timeout`, else 10)
    #[arg(long, value_name = "SECONDS", value_parser = args::seconds)]
    pub(crate) timeout: Option<Duration>,

    /// Send the request to this instance only (an instance id, see `kontiki services`)
    #[arg(long, value_name = "ID")]
    pub(crate) instance: Option<String>,

    /// An extra header, repeatable; VALUE is read as JSON when it parses, else as a string
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = args::header)]
    pub(crate) headers: Vec<(String, Value)>,

    /// The flow id of this call (default: a new one)
    #[arg(long, value_name = "ID")]
    pub(crate) flow_id: Option<String>,

    /// Print the result indented
    #[arg(long)]
    pub(crate) pretty: bool,
}

/// `kontiki publish`.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The event type (the routing key on event_exchange)
    pub(crate) event: String,

    /// The payload, one JSON value
    #[arg(value_name = "JSON", value_parser = args::json_value, allow_negative_numbers = true)]
    pub(crate) payload: Value,

    /// An extra header, repeatable; VALUE is read as JSON when it parses, else as a string
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = args::header)]
    pub(crate) headers: Vec<(String, Value)>,

    /// Fail (exit 9) when no queue is bound for the event type
    #[arg(long)]
    pub(crate) mandatory: bool,

    /// The flow id of the event (default: a new one)
    #[arg(long, value_name = "ID")]
    pub(crate) flow_id: Option<String>,
}

/// `kontiki listen`.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// A topic pattern on event_exchange
    #[arg(default_value = "#")]
    pub(crate) pattern: String,

    /// One JSON object per event: time, exchange, routing_key, headers, payload
    #[arg(long)]
    pub(crate) json: bool,

    /// Exit after N events
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
}

/// `kontiki services`.
#[derive(Debug, Args)]
pub(crate) struct ServicesArgs {
    /// Only instances with this status: active, degraded or down
    #[arg(long, value_name = "STATUS")]
    pub(crate) status: Option<String>,

    /// Print the registry's answer as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

/// `kontiki describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// The service name, as `kontiki services` lists it
    pub(crate) service: String,

    /// Do not read the registry's timeline (which gives `emits` and the RPCs the service
    /// called)
    #[arg(long)]
    pub(crate) no_timeline: bool,
}

/// `kontiki failed ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum FailedCommand {
    /// Show how many messages SERVICE's handler of EVENT gave up on, and the oldest ones
    List {
        /// The service whose handler failed
        service: String,
        /// The event type of the competing handler
        event: String,
        /// How many messages to show, oldest first
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Print the registry's answer as JSON
        #[arg(long)]
        json: bool,
    },
    /// Deliver failed messages to the handler again, oldest first
    Replay(FailedAction),
    /// Delete failed messages, oldest first
    Drop(FailedAction),
}

/// The arguments of `failed replay` and `failed drop`.
#[derive(Debug, Args)]
pub(crate) struct FailedAction {
    /// The service whose handler failed
    pub(crate) service: String,
    /// The event type of the competing handler
    pub(crate) event: String,
    /// How many messages, oldest first
    #[arg(long, default_value_t = 1, conflicts_with = "all")]
    pub(crate) count: u32,
    /// Every message in the failed queue now (counted first, so messages that fail again
    /// are not taken twice)
    #[arg(long)]
    pub(crate) all: bool,
    /// Print the registry's answer as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;
    use serde_json::json;

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn parse(argv: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kontiki").chain(argv.iter().copied()))
    }

    #[test]
    fn call_takes_json_arguments_and_options_anywhere() {
        let cli = parse(&[
            "call",
            "svc",
            "m",
            "21",
            "-3",
            "\"x\"",
            "--kwargs",
            "{\"k\":1}",
            "--timeout",
            "2.5",
            "--header",
            "tenant=t1",
            "--header",
            "n=5",
            "--instance",
            "iid",
        ])
        .unwrap();
        let Command::Call(c) = cli.command else {
            panic!("not call")
        };
        assert_eq!(c.args, vec![json!(21), json!(-3), json!("x")]);
        assert_eq!(c.kwargs.unwrap()["k"], json!(1));
        assert_eq!(c.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(
            c.headers,
            vec![("tenant".into(), json!("t1")), ("n".into(), json!(5))]
        );
        assert_eq!(c.instance.as_deref(), Some("iid"));
    }

    #[test]
    fn a_bare_word_argument_is_a_usage_error_with_a_hint() {
        let e = parse(&["call", "rpc-service", "rpc_example", "bad_input"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.contains("did you mean '\"bad_input\"'?"), "{text}");
    }

    #[test]
    fn replay_count_and_all_exclude_each_other() {
        assert!(parse(&["failed", "replay", "s", "e", "--all", "--count", "3"]).is_err());
        let cli = parse(&["failed", "drop", "s", "e", "--all"]).unwrap();
        assert!(matches!(cli.command, Command::Failed(FailedCommand::Drop(a)) if a.all));
    }

    #[test]
    fn global_options_go_after_the_subcommand_too() {
        let cli = parse(&["services", "--amqp-url", "amqp://h/v", "--config", "a.yaml"]).unwrap();
        assert_eq!(cli.amqp_url.as_deref(), Some("amqp://h/v"));
        assert_eq!(cli.config, vec![PathBuf::from("a.yaml")]);
    }

    #[test]
    fn tls_options_are_global() {
        let cli = parse(&[
            "services",
            "--tls-ca",
            "ca.pem",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "c.key",
        ])
        .unwrap();
        assert_eq!(cli.tls.tls_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(cli.tls.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(cli.tls.tls_key, Some(PathBuf::from("c.key")));
    }
}
