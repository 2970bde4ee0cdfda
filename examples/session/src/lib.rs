#![doc = include_str!("../README.md")]

use std::collections::BTreeMap;
use std::sync::Mutex;

use kontiki_generated::session::Step;
use kontiki_generated::session::session_service::{SessionService, SessionServiceServer};
use kontiki_rt::codegen::Headers;
use kontiki_rt::{BoxError, Context, Service};

/// The description `--help` prints.
pub const DESCRIPTION: &str = "Example Kontiki service: per-session state held by one replica.";

/// Per-session conversation state, held only by the replica that opened the session.
#[derive(Debug, Default)]
pub struct Conversations {
    steps: Mutex<BTreeMap<String, Vec<String>>>,
}

impl SessionService for Conversations {
    async fn on_step(&self, ctx: Context, headers: Headers, payload: Step) -> Result<(), BoxError> {
        let session = headers
            .get("session_id")
            .and_then(|v| v.as_str())
            .unwrap_or("-")
            .to_owned();
        let seen = {
            let mut steps = self
                .steps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let list = steps.entry(session.clone()).or_default();
            list.push(payload.data.clone());
            list.len()
        };
        tracing::info!(
            "session.step #{} {:?} reached instance {} (session {session}; steps held here: {seen})",
            payload.seq,
            payload.data,
            ctx.container().identity().instance_id,
        );
        Ok(())
    }
}

/// The session-service service (package `session`), ready for [`kontiki_rt::cli::run`] or
/// [`Service::start`].
pub fn service() -> kontiki_rt::Result<Service> {
    SessionServiceServer::new(Conversations::default())
        .service_builder()
        .build()
}
