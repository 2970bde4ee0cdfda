//! A service's life: [`Service::start`] sets delegates up, connects, declares and consumes;
//! [`RunningService::shutdown`] drains in-flight work and stops delegates; signals end it.

use super::Service;
use super::builder::check_word;
use super::serve::{CANCEL_TIMEOUT, ServeHook, ServeState, catalogue, lock, plan_event_queues};
use crate::clients::messenger::{Identity, Messenger};
use crate::clients::registry::{Registration, RegistryClient, RegistryHook};
use crate::config::{Config, Settings};
use crate::entrypoints::rpc::{self, RpcEntrypoint};
use crate::entrypoints::task::{self};
use crate::error::{Error, Result};
use crate::handler::{Container, Context, DynDelegate};
use crate::observe::metrics::RpcServerMetrics;
use crate::transport::connection::{Connector, ConnectorOptions};
use crate::transport::wire;
use lapin::options::BasicCancelOptions;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

impl Service {
    /// Checks `config` for this service without connecting or starting anything (what
    /// `--check-config` runs): every `kontiki.*` key, the service name, the TLS files, and the
    /// event types, schedules and HTTP paths the service reads from config. Delegates are not
    /// set up: their `setup` may need the broker or other resources, so errors only they find
    /// still show at start.
    pub fn check_config(&self, config: &Config) -> Result<()> {
        let settings = Settings::from_config(config)?;
        let name = settings
            .service_name
            .clone()
            .unwrap_or_else(|| self.name.clone());
        check_word(&name, "service name")?;
        crate::transport::tls::TlsFiles::load(&settings.amqp.tls)?;
        for ep in &self.events {
            if let crate::entrypoints::event::EventSource::Config(key) = &ep.source {
                for event_type in config.event_types(key)? {
                    check_word(&event_type, "event type")?;
                }
            }
        }
        for t in &self.tasks {
            task::resolve(t, config)?;
        }
        #[cfg(feature = "http")]
        self.http.check_config(config)?;
        Ok(())
    }

    /// Sets up delegates, connects, declares the topology, consumes, and starts delegates.
    pub async fn start(self, config: Config) -> Result<RunningService> {
        let settings = Settings::from_config(&config)?;
        let name = settings
            .service_name
            .clone()
            .unwrap_or_else(|| self.name.clone());
        check_word(&name, "service name")?;
        let identity = Identity::new(name.as_str());
        let tls = crate::transport::tls::TlsFiles::load(&settings.amqp.tls)?;
        let connector = Connector::new(ConnectorOptions {
            url: crate::transport::tls::tls_url(&settings.amqp.url, tls.is_some()),
            connection_name: format!("{name} {}", identity.instance_id),
            connect_timeout: settings.amqp.connect_timeout,
            prefetch: settings.amqp.max_pending_messages,
            tls,
            rebalance: settings.amqp.rebalance_interval,
            consumer_connection: settings.amqp.consumer_connection,
        });
        let messenger = Messenger::on_connector(
            connector.clone(),
            identity.clone(),
            settings.amqp.rpc_timeout,
            false,
        );
        if let Some(observer) = &self.observer {
            messenger.observe(observer.clone());
        }
        #[cfg(feature = "otel")]
        {
            let telemetry = match self.tracer_provider {
                Some(provider) => Some(crate::observe::otel::Telemetry::new(provider, false)),
                None => crate::observe::otel::tracer_provider_from_env(
                    &identity.service_name,
                    &identity.instance_id,
                )?
                .map(|provider| crate::observe::otel::Telemetry::new(provider, true)),
            };
            if let Some(telemetry) = telemetry {
                tracing::info!("OpenTelemetry traces on");
                messenger.set_telemetry(telemetry);
            }
        }
        messenger.set_metrics(settings.metrics.enabled);
        messenger.set_max_message_size(settings.amqp.max_message_size);
        messenger.set_fail_when_subscribers_gone(settings.amqp.fail_when_subscribers_gone);
        let container = Arc::new(Container {
            config,
            settings,
            identity,
            version: self.version,
            messenger,
            registry: std::sync::OnceLock::new(),
            observer: self.observer.clone(),
            serving: AtomicBool::new(false),
            stats: Arc::default(),
        });
        if container.settings.metrics.enabled {
            crate::observe::metrics::install();
        }
        open_log_file(&container)?;

        for d in &self.delegates {
            d.setup(&container)
                .await
                .map_err(|source| Error::Delegate {
                    delegate: d.name().to_owned(),
                    phase: "setup",
                    source,
                })?;
        }

        let event_queues = plan_event_queues(&self.events, &container)?;
        let tasks = self
            .tasks
            .iter()
            .map(|t| task::resolve(t, &container.config))
            .collect::<Result<Vec<_>>>()?;
        let rpc_metrics = self
            .rpcs
            .iter()
            .map(|ep| {
                let m = RpcServerMetrics::new(
                    container.settings.metrics.enabled,
                    &container.identity.service_name,
                    &ep.name,
                    container.stats.clone(),
                );
                (ep.name.to_string(), m)
            })
            .collect();
        let state = Arc::new(ServeState {
            container: container.clone(),
            rpc_metrics,
            dedup: {
                let amqp = &container.settings.amqp;
                (!amqp.rpc_dedup_window.is_zero()).then(|| {
                    crate::entrypoints::dedup::Dedup::new(
                        amqp.rpc_dedup_window,
                        amqp.rpc_dedup_capacity,
                    )
                })
            },
            rpcs: self.rpcs.into_iter().map(Arc::new).collect(),
            event_queues,
            session_rpc: Arc::new(session_open_entrypoint()),
            queues: self.queues.into_iter().map(Arc::new).collect(),
            shutting_down: AtomicBool::new(false),
            consumers_cancelled: AtomicBool::new(false),
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            consumers: Mutex::new(Vec::new()),
            on_connect: self.on_connect,
        });
        connector.add_hook(Arc::new(ServeHook {
            state: state.clone(),
        }));
        let registration_on = !self.registration_disabled
            && !container.settings.registration.disable
            && !container.settings.amqp.disable;
        if registration_on {
            let reg = &container.settings.registration;
            let client = Arc::new(RegistryClient::new(
                container.messenger.clone(),
                container.stats.clone(),
                Registration {
                    version: container.version.clone(),
                    group: reg.group.clone(),
                    heartbeat_interval: container.settings.heartbeat.interval,
                    delay: reg.delay,
                    report_uncaught: reg.report_uncaught_exceptions,
                    entrypoints: catalogue(&state, &tasks, {
                        #[cfg(feature = "http")]
                        {
                            self.http.catalogue(&container)
                        }
                        #[cfg(not(feature = "http"))]
                        {
                            Vec::new()
                        }
                    }),
                    public: container.settings.public.clone(),
                },
                self.health.clone(),
            ));
            let _ = container.registry.set(client.clone());
            connector.add_hook(Arc::new(RegistryHook { client }));
        }
        if container.settings.amqp.disable {
            // `kontiki.amqp.disable`: no broker at all; the messenger fails at once.
            tracing::info!("AMQP is disabled (kontiki.amqp.disable): no RPC, no events");
            connector.close().await;
        } else if container.settings.amqp.required {
            connector.start_required().await?;
        } else {
            connector.start_background();
        }
        #[cfg(feature = "http")]
        let (http, http_router) = crate::entrypoints::http::start(&self.http, &container).await?;
        #[cfg(feature = "http")]
        let ops = crate::entrypoints::http::ops::start(&container).await?;
        tracing::info!(
            service = %container.identity.service_name,
            instance_id = %container.identity.instance_id,
            version = %container.version,
            registration = if self.registration_disabled || container.settings.registration.disable { "disabled" } else { "enabled" },
            "service started"
        );

        if let Some(client) = container.registry.get() {
            state.tracker.spawn(client.clone().run(state.stop.clone()));
        }
        for t in tasks {
            tracing::debug!(task = t.name(), "starting task loop");
            state.tracker.spawn(task::run_loop(
                t,
                Context::new(container.clone()),
                self.clock.clone(),
                state.stop.clone(),
            ));
        }

        for d in &self.delegates {
            d.start(&container)
                .await
                .map_err(|source| Error::Delegate {
                    delegate: d.name().to_owned(),
                    phase: "start",
                    source,
                })?;
        }
        container.serving.store(true, Ordering::SeqCst);
        Ok(RunningService {
            state,
            connector,
            delegates: self.delegates,
            #[cfg(feature = "http")]
            http,
            #[cfg(feature = "http")]
            http_router,
            #[cfg(feature = "http")]
            ops,
        })
    }
}

fn session_open_entrypoint() -> RpcEntrypoint {
    RpcEntrypoint::new(wire::SESSION_OPEN_METHOD, |call: rpc::Call| async move {
        let iid = call.context.container().identity().instance_id.to_string();
        Ok(Value::Array(vec![
            Value::String(iid),
            Value::String(uuid::Uuid::new_v4().to_string()),
        ]))
    })
}

/// A started service.
pub struct RunningService {
    state: Arc<ServeState>,
    connector: Connector,
    delegates: Vec<Arc<dyn DynDelegate>>,
    #[cfg(feature = "http")]
    http: Option<crate::entrypoints::http::HttpServer>,
    #[cfg(feature = "http")]
    http_router: Option<axum::Router>,
    /// The `kontiki.metrics.port` listener (`/metrics`, `/live`, `/ready`).
    #[cfg(feature = "http")]
    ops: Option<crate::entrypoints::http::ops::OpsServer>,
}

impl std::fmt::Debug for RunningService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningService")
            .field("identity", &self.state.container.identity)
            .finish_non_exhaustive()
    }
}

impl RunningService {
    /// The service's name, instance id and host.
    pub fn identity(&self) -> &Identity {
        &self.state.container.identity
    }

    /// The service's messenger.
    pub fn messenger(&self) -> &Messenger {
        &self.state.container.messenger
    }

    /// The container (config, settings).
    pub fn container(&self) -> &Container {
        &self.state.container
    }

    /// The address the HTTP server listens on, when it runs.
    #[cfg(feature = "http")]
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http
            .as_ref()
            .map(crate::entrypoints::http::HttpServer::local_addr)
    }

    /// The service's HTTP routes as an axum [`Router`](axum::Router), to mount into an
    /// application's own router (`app.merge(..)` or `app.nest("/svc", ..)`): with the
    /// service's layers, flow ids, OpenAPI documents and `/metrics`, `/live`, `/ready`, as the
    /// service serves them. Set `kontiki.http.disable: true` so that the service does not also
    /// listen itself. `None` when the service declares no route.
    ///
    /// ```no_run
    /// # async fn demo(running: kontiki_rt::RunningService) -> std::io::Result<()> {
    /// let app = axum::Router::new()
    ///     .route("/", axum::routing::get(|| async { "the application's own page" }))
    ///     .merge(running.http_router().unwrap_or_default());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// axum::serve(listener, app).await
    /// # }
    /// ```
    #[cfg(feature = "http")]
    pub fn http_router(&self) -> Option<axum::Router> {
        self.http_router.clone()
    }

    /// The address of the `kontiki.metrics.port` listener (`/metrics`, `/live`, `/ready`),
    /// when one runs.
    #[cfg(feature = "http")]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.ops
            .as_ref()
            .map(crate::entrypoints::http::ops::OpsServer::local_addr)
    }

    /// Graceful shutdown: stop accepting (consumers cancelled; what arrives before the broker
    /// confirms the cancellation is handled, deliveries that arrive after it go back to the
    /// queue), drain in-flight handlers within `kontiki.shutdown.grace_seconds`,
    /// stop delegates, close. Unfinished deliveries are requeued by the broker.
    pub async fn shutdown(self) {
        let state = &self.state;
        state.shutting_down.store(true, Ordering::SeqCst);
        state.container.serving.store(false, Ordering::SeqCst);
        #[cfg(feature = "http")]
        if let Some(http) = &self.http {
            http.stop_accepting();
        }
        state.stop.cancel();
        let consumers: Vec<_> = std::mem::take(&mut *lock(&state.consumers));
        for (link, tag) in consumers {
            if !link.is_broken() {
                // Bounded: a broker that does not answer must not eat the grace period.
                let cancel = link
                    .consume
                    .basic_cancel(tag, BasicCancelOptions::default());
                if tokio::time::timeout(CANCEL_TIMEOUT, cancel).await.is_err() {
                    tracing::warn!("basic.cancel not confirmed within {CANCEL_TIMEOUT:?}");
                }
            }
        }
        state.consumers_cancelled.store(true, Ordering::SeqCst);
        if let Some(registry) = state.container.registry.get() {
            registry.unregister().await;
        }
        state.tracker.close();
        let grace = state.container.settings.shutdown.grace;
        #[cfg(feature = "http")]
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout(grace, state.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?grace, in_flight = state.tracker.len(), "grace period over; closing with handlers still running (their messages are requeued)");
        }
        #[cfg(feature = "http")]
        if let Some(http) = self.http {
            http.drain(deadline).await;
        }
        for d in self.delegates.iter().rev() {
            if let Err(e) = d.stop(&state.container).await {
                tracing::warn!(delegate = d.name(), error = %e, "delegate stop failed");
            }
        }
        self.connector.close().await;
        if let Some(telemetry) = state.container.messenger.telemetry() {
            telemetry.shutdown().await;
        }
        tracing::info!(service = %state.container.identity.service_name, "service stopped");
        crate::observe::logfile::close(&state.container.identity.instance_id);
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Kontiki's `logging.directory`: this instance's log lines also go to
/// `<directory>/<service>-<12 hex>.log` (see [`crate::observe::logfile`]).
fn open_log_file(container: &Container) -> Result<()> {
    let Some(dir) = container
        .config
        .get::<serde_json::Value>("logging.directory")?
    else {
        return Ok(());
    };
    let serde_json::Value::String(dir) = dir else {
        return Err(crate::config::ConfigError::InvalidValue {
            path: "logging.directory".to_owned(),
            message: format!("must be a string, found {dir}"),
            files: Vec::new(),
        }
        .into());
    };
    if dir.is_empty() {
        return Err(crate::config::ConfigError::InvalidValue {
            path: "logging.directory".to_owned(),
            message: "must be a non-empty string".to_owned(),
            files: Vec::new(),
        }
        .into());
    }
    let path = crate::observe::logfile::open(
        std::path::Path::new(&dir),
        &container.identity.service_name,
        &container.identity.instance_id,
    )
    .map_err(|e| {
        Error::Definition(format!(
            "logging.directory: cannot open the log file in {dir}: {e}"
        ))
    })?;
    tracing::info!(path = %path.display(), "writing Kontiki's log file");
    Ok(())
}
