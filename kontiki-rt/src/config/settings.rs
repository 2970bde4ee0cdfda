//! [`Settings`]: the typed `kontiki.*` keys (protocol §7.2) with Kontiki's defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Config, ConfigError};

/// Every `kontiki.*` key a kontiki-rs service reads, plus the top-level `public` mapping.
///
/// [`Default`] is Kontiki's defaults; [`Settings::from_config`] reads and validates a
/// [`Config`]. Values are the effective ones: with `kontiki.amqp.disable: true`,
/// `amqp.required` and `registration.disable` are forced to `false` and `true`.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Settings {
    /// `kontiki.service_name`: the logical service name; `None` lets the service decide.
    pub service_name: Option<String>,
    /// `kontiki.peers.<peer>`: service names for `peer=` proxies and sessions.
    pub peers: BTreeMap<String, String>,
    /// `kontiki.amqp.*`.
    pub amqp: AmqpSettings,
    /// `kontiki.shutdown.*`.
    pub shutdown: ShutdownSettings,
    /// `kontiki.registration.*`.
    pub registration: RegistrationSettings,
    /// `kontiki.heartbeat.*`.
    pub heartbeat: HeartbeatSettings,
    /// `kontiki.http.*`.
    pub http: HttpSettings,
    /// `kontiki.metrics.*`. A kontiki-rs addition.
    pub metrics: MetricsSettings,
    /// `kontiki.handler_timeout` and `kontiki.handler_timeouts.*`. A kontiki-rs addition.
    pub handlers: HandlerSettings,
    /// The top-level `public` mapping, sent to the registry as `config`; `None` unless it is a
    /// non-empty mapping.
    pub public: Option<Map<String, Value>>,
}

/// `kontiki.amqp.*`.
/// `Debug` hides the password of `url`.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct AmqpSettings {
    /// `kontiki.amqp.url`, default `amqp://guest:guest@localhost:5672/%2f`. Several brokers
    /// (the nodes of a cluster) as a YAML list or one comma-separated string: they are kept
    /// here comma-separated, and the runtime connects to the first that answers.
    pub url: String,
    /// `kontiki.amqp.required`, default `true`: fail at startup when the broker is unreachable;
    /// `false` connects in the background.
    pub required: bool,
    /// `kontiki.amqp.disable`, default `false`: no AMQP at all (and no registration).
    pub disable: bool,
    /// `kontiki.amqp.rpc.timeout` (seconds), default 10 s: client RPC timeout.
    pub rpc_timeout: Duration,
    /// `kontiki.amqp.max_pending_messages`, default 10: consumer prefetch (0 means no limit,
    /// as in AMQP).
    pub max_pending_messages: u16,
    /// `kontiki.amqp.max_attempts`, default 3 (at least 1): attempts for competing events.
    pub max_attempts: u32,
    /// `kontiki.amqp.tls`.
    pub tls: TlsSettings,
    /// `kontiki.amqp.connect_timeout` (seconds), default 10 s. A kontiki-rs addition.
    pub connect_timeout: Duration,
    /// `kontiki.amqp.rebalance_interval` (seconds), default 30 s, 0 = never: with several
    /// broker URLs, a process that failed over to another broker than its home (the one it
    /// picked at random) tries its home this often and moves back once it answers, draining
    /// its work on the old connection first, so that the fleet spreads over the nodes again
    /// after a node returns. A kontiki-rs addition.
    pub rebalance_interval: Duration,
    /// `kontiki.amqp.consumer_connection`, default `true`: a service's consumers and acks
    /// have a connection of their own, as RabbitMQ advises (a resource alarm blocks connections
    /// that publish; acks keep flowing on the other, so the service drains its queues while
    /// the alarm lasts). `false` puts them on the publishing connection: one socket instead of
    /// two per instance (no measurable change in CPU per RPC call, docs/PERFORMANCE.md), but
    /// under an alarm the service stops acking. A kontiki-rs addition.
    pub consumer_connection: bool,
    /// `kontiki.amqp.max_message_size` (bytes), default 16 MiB (RabbitMQ 4's
    /// `max_message_size`; 3.x allows 128 MiB): a larger event, request or reply fails with
    /// [`Error::MessageTooLarge`](crate::Error::MessageTooLarge) before it is sent, instead of
    /// the broker closing the channel (and with it every call in flight). A kontiki-rs
    /// addition.
    pub max_message_size: usize,
    /// `kontiki.amqp.rpc.expose_internal_errors`, default `false`: an RPC handler's internal
    /// error (not a declared error code) or panic is answered with a generic message and an
    /// error id that the service logs with the details; `true` (development) sends the details.
    /// A kontiki-rs addition: Python Kontiki sends the exception's text.
    pub expose_internal_errors: bool,
    /// `kontiki.amqp.rpc.dedup_window` (seconds), default 300 s, 0 = off: a request this
    /// instance handled (or is handling) within the window is answered with the reply of its
    /// first run instead of running again when the broker delivers it again. A kontiki-rs
    /// addition.
    pub rpc_dedup_window: Duration,
    /// `kontiki.amqp.rpc.dedup_capacity`, default 10000 (at least 1): at most this many
    /// requests are remembered (replies over 64 KiB are not kept).
    pub rpc_dedup_capacity: usize,
    /// `kontiki.amqp.events.fail_when_subscribers_gone`, default `false`: when `true`, an event whose routing
    /// key this process has seen delivered to a queue, and that the broker now returns as
    /// unroutable (its subscribers' bindings are gone, as after a broker restart while they are
    /// down), is published again until a subscriber has bound again, within the publish wait,
    /// then fails with [`Error::Unroutable`](crate::Error::Unroutable) instead of being dropped
    /// while the publisher reports success. `false` drops it as Kontiki does: subscribers that
    /// leave on purpose (broadcast and session queues go with their instance) are normal. The
    /// Rust registry restores the bindings of known competing queues after a reconnection,
    /// which covers the common case without this. A kontiki-rs addition.
    pub fail_when_subscribers_gone: bool,
}

impl std::fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &super::redact::redact_url(&self.url))
            .field("required", &self.required)
            .field("disable", &self.disable)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("max_pending_messages", &self.max_pending_messages)
            .field("max_attempts", &self.max_attempts)
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("rebalance_interval", &self.rebalance_interval)
            .field("consumer_connection", &self.consumer_connection)
            .field("max_message_size", &self.max_message_size)
            .field("expose_internal_errors", &self.expose_internal_errors)
            .field("rpc_dedup_window", &self.rpc_dedup_window)
            .field("rpc_dedup_capacity", &self.rpc_dedup_capacity)
            .field(
                "fail_when_subscribers_gone",
                &self.fail_when_subscribers_gone,
            )
            .finish()
    }
}

impl AmqpSettings {
    /// Kontiki's default broker URL (`/` vhost spelled out for lapin).
    pub const DEFAULT_URL: &'static str = "amqp://guest:guest@localhost:5672/%2f";
    /// The default `kontiki.amqp.max_message_size`: 16 MiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: Self::DEFAULT_URL.to_owned(),
            required: true,
            disable: false,
            rpc_timeout: Duration::from_secs(10),
            max_pending_messages: 10,
            max_attempts: 3,
            tls: TlsSettings::default(),
            connect_timeout: Duration::from_secs(10),
            rebalance_interval: Duration::from_secs(30),
            consumer_connection: true,
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            fail_when_subscribers_gone: false,
            expose_internal_errors: false,
            rpc_dedup_window: Duration::from_secs(300),
            rpc_dedup_capacity: 10_000,
        }
    }
}

/// `kontiki.amqp.tls`: off by default.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct TlsSettings {
    /// `enabled`, default `false`.
    pub enabled: bool,
    /// `ca_cert`: CA bundle (PEM); required when `enabled`.
    pub ca_cert: Option<PathBuf>,
    /// `client_cert`: client certificate (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// `client_key`: client private key (PEM); needs `client_cert`.
    pub client_key: Option<PathBuf>,
}

impl TlsSettings {
    /// TLS on, the server verified against the CA bundle `ca_cert` (PEM), as
    /// `kontiki.amqp.tls: {enabled: true, ca_cert: ...}` says.
    pub fn with_ca_cert(ca_cert: impl Into<PathBuf>) -> Self {
        Self {
            enabled: true,
            ca_cert: Some(ca_cert.into()),
            client_cert: None,
            client_key: None,
        }
    }

    /// Presents the client certificate `cert` with its private key `key` (PEM, PKCS#8) for
    /// mutual TLS (`client_cert`, `client_key`).
    pub fn client_identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }
}

/// `kontiki.shutdown.*`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ShutdownSettings {
    /// `kontiki.shutdown.grace_seconds`, default 25 s: drain time at shutdown.
    pub grace: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(25),
        }
    }
}

/// `kontiki.registration.*`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RegistrationSettings {
    /// `kontiki.registration.disable`, default `false`: no registry client, no heartbeats.
    /// The runner ORs it with its `--disable-service-registration` flag.
    pub disable: bool,
    /// `kontiki.registration.delay` (seconds), default 2 s: wait before the first register.
    pub delay: Duration,
    /// `kontiki.registration.group`, default (and when blank) `business`.
    pub group: String,
    /// `kontiki.registration.report_uncaught_exceptions`, default `true`.
    pub report_uncaught_exceptions: bool,
}

impl RegistrationSettings {
    /// The group used when none (or a blank one) is configured.
    pub const DEFAULT_GROUP: &'static str = "business";
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            disable: false,
            delay: Duration::from_secs(2),
            group: Self::DEFAULT_GROUP.to_owned(),
            report_uncaught_exceptions: true,
        }
    }
}

/// `kontiki.heartbeat.*`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HeartbeatSettings {
    /// `kontiki.heartbeat.interval` (seconds), default 60 s; also sent in the register body.
    pub interval: Duration,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
        }
    }
}

/// `kontiki.http.*`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HttpSettings {
    /// `kontiki.http.disable`, default `false`: do not serve `@http` routes.
    pub disable: bool,
    /// `kontiki.http.address`, default `127.0.0.1` (Kontiki: `0.0.0.0`): only this host
    /// reaches the routes until the address says otherwise (`0.0.0.0` for every interface, e.g.
    /// in a container).
    pub address: String,
    /// `kontiki.http.port`, default 8080 (0 picks a free port).
    pub port: u16,
    /// `kontiki.http.max_body_bytes`, default 2 MiB (at least 1). A kontiki-rs addition.
    pub max_body_bytes: usize,
    /// `kontiki.http.documentation.*`.
    pub documentation: DocumentationSettings,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            disable: false,
            address: "127.0.0.1".to_owned(),
            port: 8080,
            max_body_bytes: 2 * 1024 * 1024,
            documentation: DocumentationSettings::default(),
        }
    }
}

/// `kontiki.metrics.*`: Prometheus metrics and the health endpoints. A kontiki-rs addition.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricsSettings {
    /// `kontiki.metrics.enabled`, default `true`: record metrics and serve `GET /metrics`
    /// (with the `metrics` cargo feature).
    pub enabled: bool,
    /// `kontiki.metrics.address`, default `127.0.0.1`: where the metrics listener binds.
    pub address: String,
    /// `kontiki.metrics.port`: a listener of its own for `/metrics`, `/live` and `/ready`
    /// (0 picks a free port). Without it they are served on the HTTP port, when the service
    /// has HTTP routes.
    pub port: Option<u16>,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            address: "127.0.0.1".to_owned(),
            port: None,
        }
    }
}

/// How long an RPC method, event handler or queue handler may run: `kontiki.handler_timeout`
/// and `kontiki.handler_timeouts.<entrypoint>`. A kontiki-rs addition (Kontiki has no limit).
///
/// A handler still running at its timeout is cancelled (at its next `.await`) and counts as
/// failed: an RPC answers with a server error, an event or queue delivery is rejected as when
/// its handler returns an error.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HandlerSettings {
    /// `kontiki.handler_timeout` (seconds), default 300 s: the timeout of every handler
    /// without one of its own.
    pub timeout: Duration,
    /// `kontiki.handler_timeouts.<entrypoint>` (seconds): the timeout of one entrypoint, by
    /// its name (an RPC's wire name, an event handler's name, a queue entrypoint's queue).
    /// It wins over the entrypoint's own `.timeout(..)`.
    pub timeouts: BTreeMap<String, Duration>,
}

impl HandlerSettings {
    /// The default of `kontiki.handler_timeout`: 5 minutes.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

    /// The timeout of the entrypoint `name` whose code set `own` (its `.timeout(..)`):
    /// `kontiki.handler_timeouts.<name>`, else `own`, else `kontiki.handler_timeout`.
    ///
    /// ```
    /// use kontiki_rt::config::HandlerSettings;
    /// use std::time::Duration;
    /// let settings = HandlerSettings::default();
    /// assert_eq!(settings.timeout_for("get", None), Duration::from_secs(300));
    /// assert_eq!(settings.timeout_for("get", Some(Duration::from_secs(2))), Duration::from_secs(2));
    /// ```
    pub fn timeout_for(&self, name: &str, own: Option<Duration>) -> Duration {
        self.timeouts
            .get(name)
            .copied()
            .or(own)
            .unwrap_or(self.timeout)
    }
}

impl Default for HandlerSettings {
    fn default() -> Self {
        Self {
            timeout: Self::DEFAULT_TIMEOUT,
            timeouts: BTreeMap::new(),
        }
    }
}

/// `kontiki.http.documentation.*`: the OpenAPI/Swagger routes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DocumentationSettings {
    /// `enabled`, default `true`.
    pub enabled: bool,
    /// `path_template`, default `/api/{version}/docs`.
    pub path_template: String,
    /// `title`; `None` means the service name.
    pub title: Option<String>,
    /// `description`; `None` means `API documentation for <service name>`.
    pub description: Option<String>,
}

impl Default for DocumentationSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path_template: "/api/{version}/docs".to_owned(),
            title: None,
            description: None,
        }
    }
}

/// Keys Kontiki 1.x read that 2.3.2 ignores.
const IGNORED_1X_KEYS: &[&str] = &[
    "kontiki.amqp.serialization",
    "kontiki.registration.configuration",
];

/// Every `kontiki.*` mapping or leaf we read; `peers` takes any key.
const KNOWN_KEYS: &[&str] = &[
    "kontiki.service_name",
    "kontiki.peers",
    "kontiki.amqp",
    "kontiki.amqp.url",
    "kontiki.amqp.required",
    "kontiki.amqp.disable",
    "kontiki.amqp.rpc",
    "kontiki.amqp.rpc.timeout",
    "kontiki.amqp.rpc.expose_internal_errors",
    "kontiki.amqp.rpc.dedup_window",
    "kontiki.amqp.rpc.dedup_capacity",
    "kontiki.amqp.max_pending_messages",
    "kontiki.amqp.max_attempts",
    "kontiki.amqp.tls",
    "kontiki.amqp.tls.enabled",
    "kontiki.amqp.tls.ca_cert",
    "kontiki.amqp.tls.client_cert",
    "kontiki.amqp.tls.client_key",
    "kontiki.amqp.connect_timeout",
    "kontiki.amqp.rebalance_interval",
    "kontiki.amqp.consumer_connection",
    "kontiki.amqp.max_message_size",
    "kontiki.amqp.events",
    "kontiki.amqp.events.fail_when_subscribers_gone",
    "kontiki.shutdown",
    "kontiki.shutdown.grace_seconds",
    "kontiki.registration",
    "kontiki.registration.disable",
    "kontiki.registration.delay",
    "kontiki.registration.group",
    "kontiki.registration.report_uncaught_exceptions",
    "kontiki.heartbeat",
    "kontiki.heartbeat.interval",
    "kontiki.http",
    "kontiki.http.disable",
    "kontiki.http.address",
    "kontiki.http.port",
    "kontiki.http.max_body_bytes",
    "kontiki.http.documentation",
    "kontiki.http.documentation.enabled",
    "kontiki.http.documentation.path_template",
    "kontiki.http.documentation.title",
    "kontiki.http.documentation.description",
    "kontiki.metrics",
    "kontiki.metrics.enabled",
    "kontiki.metrics.address",
    "kontiki.metrics.port",
    "kontiki.handler_timeout",
    "kontiki.handler_timeouts",
];

impl Settings {
    /// Reads and validates every `kontiki.*` key (and `public`), with Kontiki's defaults.
    ///
    /// A `null` value counts as missing. Durations are int or float seconds. Unknown
    /// `kontiki.*` keys are logged as warnings and ignored.
    ///
    /// # Errors
    ///
    /// [`ConfigError::WrongType`] for a value of the wrong type, [`ConfigError::InvalidValue`]
    /// for a negative duration, an out-of-range number, a blank service name or
    /// `kontiki.amqp.disable: true` together with an explicit `kontiki.amqp.required: true` or
    /// `kontiki.registration.disable: false`, and [`ConfigError::MissingKey`] for a TLS setup
    /// without `ca_cert`.
    pub fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        warn_unknown_keys(config);
        let read = Reader { config };
        let defaults = Settings::default();

        let service_name = match read.string("kontiki.service_name")? {
            Some(name) if name.trim().is_empty() => {
                return Err(config.invalid(
                    "kontiki.service_name",
                    format!("must be a non-empty string, found {}", Value::String(name)),
                ));
            }
            other => other,
        };

        let mut peers = BTreeMap::new();
        for (peer, value) in read.mapping("kontiki.peers")?.into_iter().flatten() {
            let path = format!("kontiki.peers.{peer}");
            match value {
                Value::Null => {}
                Value::String(name) if !name.is_empty() => {
                    peers.insert(peer.clone(), name.clone());
                }
                other => return Err(config.wrong_type(&path, "a non-empty service name", other)),
            }
        }

        let amqp = read_amqp(&read, &defaults.amqp)?;
        let shutdown = ShutdownSettings {
            grace: read.duration(
                "kontiki.shutdown.grace_seconds",
                defaults.shutdown.grace,
                false,
            )?,
        };
        let mut registration = RegistrationSettings {
            disable: read.bool(
                "kontiki.registration.disable",
                defaults.registration.disable,
            )?,
            delay: read.duration(
                "kontiki.registration.delay",
                defaults.registration.delay,
                false,
            )?,
            group: match read.string("kontiki.registration.group")? {
                Some(group) if !group.trim().is_empty() => group,
                _ => defaults.registration.group,
            },
            report_uncaught_exceptions: read.bool(
                "kontiki.registration.report_uncaught_exceptions",
                defaults.registration.report_uncaught_exceptions,
            )?,
        };
        let heartbeat = HeartbeatSettings {
            interval: read.duration(
                "kontiki.heartbeat.interval",
                defaults.heartbeat.interval,
                true,
            )?,
        };
        let http = read_http(&read, &defaults.http)?;
        let metrics = MetricsSettings {
            enabled: read.bool("kontiki.metrics.enabled", defaults.metrics.enabled)?,
            address: read
                .string("kontiki.metrics.address")?
                .unwrap_or_else(|| defaults.metrics.address.clone()),
            port: match read.raw("kontiki.metrics.port")? {
                None => None,
                Some(_) => Some(read.integer("kontiki.metrics.port", 0u16, 0)?),
            },
        };
        let handlers = read_handlers(&read, config, &defaults.handlers)?;

        let mut amqp = amqp;
        if amqp.disable {
            if read.explicit_bool("kontiki.amqp.required")? == Some(true) {
                return Err(contradiction(config, "kontiki.amqp.required", "true"));
            }
            if read.explicit_bool("kontiki.registration.disable")? == Some(false) {
                return Err(contradiction(
                    config,
                    "kontiki.registration.disable",
                    "false",
                ));
            }
            amqp.required = false;
            registration.disable = true;
        }

        let public = match read.mapping("public")? {
            Some(public) if !public.is_empty() => Some(public.clone()),
            _ => None,
        };

        Ok(Settings {
            service_name,
            peers,
            amqp,
            shutdown,
            registration,
            heartbeat,
            http,
            metrics,
            handlers,
            public,
        })
    }
}

fn read_amqp(read: &Reader<'_>, defaults: &AmqpSettings) -> Result<AmqpSettings, ConfigError> {
    let tls = TlsSettings {
        enabled: read.bool("kontiki.amqp.tls.enabled", false)?,
        ca_cert: read.string("kontiki.amqp.tls.ca_cert")?.map(PathBuf::from),
        client_cert: read
            .string("kontiki.amqp.tls.client_cert")?
            .map(PathBuf::from),
        client_key: read
            .string("kontiki.amqp.tls.client_key")?
            .map(PathBuf::from),
    };
    if tls.enabled && tls.ca_cert.is_none() {
        return Err(ConfigError::MissingKey {
            path: "kontiki.amqp.tls.ca_cert".to_owned(),
            condition: Some("when `kontiki.amqp.tls.enabled` is true".to_owned()),
        });
    }
    if tls.client_key.is_some() && tls.client_cert.is_none() {
        return Err(ConfigError::MissingKey {
            path: "kontiki.amqp.tls.client_cert".to_owned(),
            condition: Some("when `kontiki.amqp.tls.client_key` is set".to_owned()),
        });
    }
    Ok(AmqpSettings {
        url: read
            .url_list("kontiki.amqp.url")?
            .unwrap_or_else(|| defaults.url.clone()),
        required: read.bool("kontiki.amqp.required", defaults.required)?,
        disable: read.bool("kontiki.amqp.disable", defaults.disable)?,
        rpc_timeout: read.duration("kontiki.amqp.rpc.timeout", defaults.rpc_timeout, true)?,
        max_pending_messages: read.integer(
            "kontiki.amqp.max_pending_messages",
            defaults.max_pending_messages,
            0,
        )?,
        max_attempts: read.integer("kontiki.amqp.max_attempts", defaults.max_attempts, 1)?,
        tls,
        connect_timeout: read.duration(
            "kontiki.amqp.connect_timeout",
            defaults.connect_timeout,
            true,
        )?,
        rebalance_interval: read.duration(
            "kontiki.amqp.rebalance_interval",
            defaults.rebalance_interval,
            false,
        )?,
        consumer_connection: read.bool(
            "kontiki.amqp.consumer_connection",
            defaults.consumer_connection,
        )?,
        max_message_size: read.integer(
            "kontiki.amqp.max_message_size",
            defaults.max_message_size,
            1,
        )?,
        fail_when_subscribers_gone: read.bool(
            "kontiki.amqp.events.fail_when_subscribers_gone",
            defaults.fail_when_subscribers_gone,
        )?,
        expose_internal_errors: read.bool(
            "kontiki.amqp.rpc.expose_internal_errors",
            defaults.expose_internal_errors,
        )?,
        rpc_dedup_window: read.duration(
            "kontiki.amqp.rpc.dedup_window",
            defaults.rpc_dedup_window,
            false,
        )?,
        rpc_dedup_capacity: read.integer(
            "kontiki.amqp.rpc.dedup_capacity",
            defaults.rpc_dedup_capacity,
            1,
        )?,
    })
}

fn read_handlers(
    read: &Reader<'_>,
    config: &Config,
    defaults: &HandlerSettings,
) -> Result<HandlerSettings, ConfigError> {
    let mut timeouts = BTreeMap::new();
    for (name, value) in read
        .mapping("kontiki.handler_timeouts")?
        .into_iter()
        .flatten()
    {
        if value.is_null() {
            continue;
        }
        // Entrypoint names may hold dots (a queue name): the key is not a dotted path.
        let path = format!("kontiki.handler_timeouts.{name}");
        timeouts.insert(name.clone(), config.to_duration(&path, value, true)?);
    }
    Ok(HandlerSettings {
        timeout: read.duration("kontiki.handler_timeout", defaults.timeout, true)?,
        timeouts,
    })
}

fn read_http(read: &Reader<'_>, defaults: &HttpSettings) -> Result<HttpSettings, ConfigError> {
    let docs = &defaults.documentation;
    Ok(HttpSettings {
        disable: read.bool("kontiki.http.disable", defaults.disable)?,
        address: read
            .string("kontiki.http.address")?
            .unwrap_or_else(|| defaults.address.clone()),
        port: read.integer("kontiki.http.port", defaults.port, 0)?,
        max_body_bytes: read.integer("kontiki.http.max_body_bytes", defaults.max_body_bytes, 1)?,
        documentation: DocumentationSettings {
            enabled: read.bool("kontiki.http.documentation.enabled", docs.enabled)?,
            path_template: read
                .string("kontiki.http.documentation.path_template")?
                .unwrap_or_else(|| docs.path_template.clone()),
            title: read.string("kontiki.http.documentation.title")?,
            description: read.string("kontiki.http.documentation.description")?,
        },
    })
}

/// The error for `kontiki.amqp.disable: true` with a contradicting `other: value`.
fn contradiction(config: &Config, other: &str, value: &str) -> ConfigError {
    let mut files = config.owned_files_of("kontiki.amqp.disable");
    for file in config.owned_files_of(other) {
        if !files.contains(&file) {
            files.push(file);
        }
    }
    ConfigError::InvalidValue {
        path: "kontiki.amqp.disable".to_owned(),
        message: format!("cannot be true while `{other}` is {value}"),
        files,
    }
}

/// Warns about `kontiki.*` keys that nothing reads.
fn warn_unknown_keys(config: &Config) {
    fn walk(map: &Map<String, Value>, prefix: &str) {
        for (key, value) in map {
            let path = format!("{prefix}.{key}");
            if IGNORED_1X_KEYS.contains(&path.as_str()) {
                tracing::warn!(path = %path, "`{path}` is a Kontiki 1.x key and is ignored");
            } else if !KNOWN_KEYS.contains(&path.as_str()) {
                tracing::warn!(path = %path, "`{path}` is not a known Kontiki setting and is ignored");
            } else if path != "kontiki.peers"
                && path != "kontiki.handler_timeouts"
                && let Value::Object(inner) = value
            {
                walk(inner, &path);
            }
        }
    }
    if let Some(Value::Object(kontiki)) = config.value("kontiki") {
        walk(kontiki, "kontiki");
    }
}

/// Typed reads with Kontiki's defaults and precise errors.
struct Reader<'a> {
    config: &'a Config,
}

impl Reader<'_> {
    fn raw(&self, path: &str) -> Result<Option<&Value>, ConfigError> {
        self.config.lookup(path)
    }

    fn bool(&self, path: &str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.explicit_bool(path)?.unwrap_or(default))
    }

    fn explicit_bool(&self, path: &str) -> Result<Option<bool>, ConfigError> {
        match self.raw(path)? {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(self.config.wrong_type(path, "`true` or `false`", other)),
        }
    }

    fn string(&self, path: &str) -> Result<Option<String>, ConfigError> {
        match self.raw(path)? {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(self.config.wrong_type(path, "a string", other)),
        }
    }

    /// A broker URL or a list of them (a YAML sequence, or one string with commas), as one
    /// comma-separated string.
    fn url_list(&self, path: &str) -> Result<Option<String>, ConfigError> {
        let list = match self.raw(path)? {
            None => return Ok(None),
            Some(Value::String(text)) => {
                text.split(',').map(str::trim).map(str::to_owned).collect()
            }
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_owned()),
                    other => Err(self.config.wrong_type(path, "a list of URL strings", other)),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(self
                    .config
                    .wrong_type(path, "a URL or a list of URLs", other));
            }
        };
        if list.is_empty() || list.iter().any(String::is_empty) {
            return Err(self.config.invalid(
                path,
                "an empty broker URL (a list needs at least one, none empty)".to_owned(),
            ));
        }
        Ok(Some(list.join(",")))
    }

    fn mapping(&self, path: &str) -> Result<Option<&Map<String, Value>>, ConfigError> {
        match self.raw(path)? {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(self.config.wrong_type(path, "a mapping", other)),
        }
    }

    fn duration(
        &self,
        path: &str,
        default: Duration,
        positive: bool,
    ) -> Result<Duration, ConfigError> {
        match self.raw(path)? {
            None => Ok(default),
            Some(value) => self.config.to_duration(path, value, positive),
        }
    }

    /// An integer in `min..=T::MAX`.
    fn integer<T>(&self, path: &str, default: T, min: u64) -> Result<T, ConfigError>
    where
        T: TryFrom<u64> + Bounded,
    {
        let Some(value) = self.raw(path)? else {
            return Ok(default);
        };
        let Value::Number(number) = value else {
            return Err(self.config.wrong_type(path, "an integer", value));
        };
        if number.as_u64().is_none() && number.as_i64().is_none() {
            return Err(self.config.wrong_type(path, "an integer", value));
        }
        let range = || format!("must be between {min} and {}, found {number}", T::MAX_U128);
        let unsigned = number
            .as_u64()
            .filter(|n| *n >= min)
            .ok_or_else(|| self.config.invalid(path, range()))?;
        T::try_from(unsigned).map_err(|_| self.config.invalid(path, range()))
    }
}

/// The largest value of an unsigned integer type, for range messages.
trait Bounded {
    const MAX_U128: u128;
}

impl Bounded for u16 {
    const MAX_U128: u128 = u16::MAX as u128;
}

impl Bounded for u32 {
    const MAX_U128: u128 = u32::MAX as u128;
}

impl Bounded for usize {
    const MAX_U128: u128 = usize::MAX as u128;
}
