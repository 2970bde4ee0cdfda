#![doc = include_str!("../README.md")]

use std::sync::{Arc, OnceLock};

use kontiki_generated::compute::ThingProcessed;
use kontiki_generated::compute::compute_api::{
    ComputeApi, ComputeApiPublisher, ComputeApiServer, ComputeError,
};
use kontiki_rt::codegen::Json;
use kontiki_rt::{BoxError, Container, Context, Delegate, Service};

/// The description `--help` prints.
pub const DESCRIPTION: &str = "Example Kontiki service: doubles numbers and processes things.";

/// The domain logic of compute-api (Kontiki's `ServiceDelegate`): doubles numbers, with a cache
/// TTL it reads from `app.cache.ttl_seconds` in `setup`.
#[derive(Debug, Default)]
pub struct Doubler {
    ttl_seconds: OnceLock<u64>,
}

impl Doubler {
    /// `x * 2`, or `None` when that overflows an `i64`.
    pub fn double(&self, x: i64) -> Option<i64> {
        x.checked_mul(2)
    }

    /// The cache TTL read in `setup` (`None` before the service started).
    pub fn ttl_seconds(&self) -> Option<u64> {
        self.ttl_seconds.get().copied()
    }
}

impl Delegate for Doubler {
    fn name(&self) -> &str {
        "Doubler"
    }

    async fn setup(&self, container: &Container) -> Result<(), BoxError> {
        let ttl = kontiki_rt::get_parameter(container.config(), "app.cache.ttl_seconds", 60_u64)?;
        // A second setup (a restarted service in the same process) keeps the first value.
        let _ = self.ttl_seconds.set(ttl);
        tracing::info!("delegate ready: cache ttl {ttl} s (app.cache.ttl_seconds)");
        Ok(())
    }
}

/// The service: a thin entry layer over [`Doubler`].
#[derive(Debug)]
pub struct Compute {
    doubler: Arc<Doubler>,
}

impl ComputeApi for Compute {
    async fn compute(&self, _ctx: Context, x: i64) -> Result<i64, ComputeError> {
        let y = self
            .doubler
            .double(x)
            .ok_or_else(|| ComputeError::internal(format!("{x} * 2 does not fit an i64")))?;
        tracing::info!("compute({x}) -> {y}");
        Ok(y)
    }

    async fn on_thing(&self, ctx: Context, payload: Json) -> Result<(), BoxError> {
        let processed = ThingProcessed { payload };
        ComputeApiPublisher::new(ctx.messenger().clone())
            .thing_processed(&processed)
            .await?;
        tracing::info!(
            "thing_happened {} -> published thing_processed",
            processed.payload
        );
        Ok(())
    }
}

/// The compute-api service, ready for [`kontiki_rt::cli::run`] or [`Service::start`].
pub fn service() -> kontiki_rt::Result<Service> {
    service_with(Arc::new(Doubler::default()))
}

/// [`service`] with a given delegate, to read what it was configured with.
pub fn service_with(doubler: Arc<Doubler>) -> kontiki_rt::Result<Service> {
    ComputeApiServer::new(Compute {
        doubler: doubler.clone(),
    })
    .service_builder()
    .delegate(doubler)
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_refuses_overflow() {
        let d = Doubler::default();
        assert_eq!(d.double(21), Some(42));
        assert_eq!(d.double(i64::MAX), None);
    }
}
