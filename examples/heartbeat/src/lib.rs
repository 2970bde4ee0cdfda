#![doc = include_str!("../README.md")]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use kontiki_generated::heartbeat::heartbeat_service::{
    HeartbeatService, HeartbeatServiceServer, PingError,
};
use kontiki_rt::{BoxError, Container, Context, Delegate, Service};

/// The description `--help` prints.
pub const DESCRIPTION: &str = "Example Kontiki service: heartbeats with a degraded check.";

/// The config key naming the directory the service needs.
pub const DIR_KEY: &str = "app.heartbeat.required_dir";

/// Degraded while the directory named by `app.heartbeat.required_dir` is missing.
#[derive(Debug, Default)]
pub struct DirWatch {
    dir: OnceLock<PathBuf>,
    last: Mutex<Option<Option<String>>>,
}

impl DirWatch {
    /// Why the service is degraded now, if it is.
    fn check(&self) -> Option<String> {
        let dir = self.dir.get()?;
        if dir.is_dir() {
            None
        } else {
            Some(format!("directory {} is missing", dir.display()))
        }
    }
}

impl Delegate for DirWatch {
    fn name(&self) -> &str {
        "DirWatch"
    }

    async fn setup(&self, container: &Container) -> Result<(), BoxError> {
        let dir: PathBuf = container
            .config()
            .get(DIR_KEY)?
            .ok_or_else(|| format!("`{DIR_KEY}` is not configured"))?;
        tracing::info!("watching {} ({DIR_KEY})", dir.display());
        let _ = self.dir.set(dir);
        Ok(())
    }
}

impl HeartbeatService for DirWatch {
    async fn ping(&self, _ctx: Context) -> Result<String, PingError> {
        Ok("pong".to_owned())
    }

    async fn degraded(&self) -> Option<String> {
        let now = self.check();
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.as_ref() != Some(&now) {
            match &now {
                Some(reason) => tracing::warn!("degraded: {reason}"),
                None => tracing::info!("healthy"),
            }
            *last = Some(now.clone());
        }
        now
    }
}

/// The heartbeat-service service (package `heartbeat`), ready for [`kontiki_rt::cli::run`] or
/// [`Service::start`].
pub fn service() -> kontiki_rt::Result<Service> {
    let watch = Arc::new(DirWatch::default());
    HeartbeatServiceServer::from_arc(watch.clone())
        .service_builder()
        .delegate(watch)
        .build()
}
