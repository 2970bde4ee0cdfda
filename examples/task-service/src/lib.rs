#![doc = include_str!("../README.md")]

use std::sync::atomic::{AtomicU64, Ordering};

use kontiki_generated::task_service::task_service::{TaskService, TaskServiceServer};
use kontiki_rt::{BoxError, Context, Service};

/// The description `--help` prints.
pub const DESCRIPTION: &str = "Example Kontiki service: periodic tasks.";

/// Counts the runs of each task.
#[derive(Debug, Default)]
pub struct Tasks {
    ticks: AtomicU64,
    cleanups: AtomicU64,
}

impl TaskService for Tasks {
    async fn tick(&self, _ctx: Context) -> Result<(), BoxError> {
        let n = self.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!("tick #{n} (every 10 s, the first at start)");
        Ok(())
    }

    async fn nightly_report(&self, _ctx: Context) -> Result<(), BoxError> {
        tracing::info!("nightly report (cron \"0 3 * * MON-FRI\", UTC)");
        Ok(())
    }

    async fn cleanup(&self, ctx: Context) -> Result<(), BoxError> {
        let n = self.cleanups.fetch_add(1, Ordering::Relaxed) + 1;
        let every: u64 =
            kontiki_rt::get_parameter(ctx.container().config(), "app.cleanup.interval", 0_u64)?;
        tracing::info!("cleanup #{n} (every {every} s, from app.cleanup.interval)");
        Ok(())
    }
}

/// The task-service service, ready for [`kontiki_rt::cli::run`] or [`Service::start`].
pub fn service() -> kontiki_rt::Result<Service> {
    TaskServiceServer::new(Tasks::default())
        .service_builder()
        .build()
}
