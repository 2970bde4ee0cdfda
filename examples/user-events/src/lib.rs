#![doc = include_str!("../README.md")]

use kontiki_generated::user_events::UserCreated;
use kontiki_generated::user_events::user_events::{UserEvents, UserEventsServer};
use kontiki_rt::{BoxError, Context, Service};

/// The description `--help` prints.
pub const DESCRIPTION: &str = "Example Kontiki service: reacts to new users.";

/// Handles `user.created`.
#[derive(Debug, Default)]
pub struct Welcome;

impl UserEvents for Welcome {
    async fn on_user_created(&self, _ctx: Context, payload: UserCreated) -> Result<(), BoxError> {
        tracing::info!("user.created: welcome, {}", payload.id);
        Ok(())
    }
}

/// The user-events service, ready for [`kontiki_rt::cli::run`] or [`Service::start`].
pub fn service() -> kontiki_rt::Result<Service> {
    UserEventsServer::new(Welcome).service_builder().build()
}
