#![doc = include_str!("../README.md")]

use std::collections::BTreeMap;
use std::sync::Mutex;

use kontiki_generated::broadcast::CacheInvalidate;
use kontiki_generated::broadcast::cache_service::{CacheService, CacheServiceServer};
use kontiki_rt::{BoxError, Context, Service};

/// The description `--help` prints.
pub const DESCRIPTION: &str =
    "Example Kontiki service: a per-replica cache invalidated by broadcast.";

/// A replica's local cache.
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<BTreeMap<String, String>>,
}

impl CacheService for Cache {
    async fn on_invalidate(&self, ctx: Context, payload: CacheInvalidate) -> Result<(), BoxError> {
        let removed = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&payload.key)
            .is_some();
        tracing::info!(
            "cache.invalidate {:?} reached instance {} (entry {})",
            payload.key,
            ctx.container().identity().instance_id,
            if removed { "dropped" } else { "was not cached" }
        );
        Ok(())
    }
}

/// The cache-service service (package `broadcast`), ready for [`kontiki_rt::cli::run`] or
/// [`Service::start`]. Run it twice: both replicas get every `cache.invalidate`.
pub fn service() -> kontiki_rt::Result<Service> {
    CacheServiceServer::new(Cache::default())
        .service_builder()
        .build()
}
