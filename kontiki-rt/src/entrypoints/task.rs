//! Periodic tasks (Kontiki's `@task`): every interval or on a cron schedule, never overlapping.
//!
//! The next run starts after the previous one ended; cron ticks missed while a run was still
//! going are skipped and logged. Each run gets a fresh flow id, `entrypoint=task`,
//! `operation=<task name>`. An error or a panic is logged and the loop goes on. At shutdown no
//! new run starts and the current one may finish within the grace period.

use crate::error::{Error, Result};
use crate::handler::Context;
use crate::handler::{HandlerError, panic_message};
use crate::transport::flow::{self, EntrypointKind, FlowContext};
use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// When a task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Schedule {
    /// Every interval (the next run starts this long after the previous one ended).
    Every(Duration),
    /// Every interval read from a config key (seconds, integer or float).
    EveryConfig(String),
    /// A 5-field cron expression.
    Cron(String),
    /// A cron expression read from a config key.
    CronConfig(String),
}

/// Wall-clock time as the task scheduler sees it; replace it in tests to drive cron schedules.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that follows tokio's clock from a starting time, so a test with
/// `tokio::time::pause()` moves cron schedules forward without waiting.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `start` now.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            start_wall: start,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.start);
        self.start_wall + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }
}

/// One run of a task, as its handler sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct TaskRun {
    /// The task's name.
    pub name: String,
    /// When the run was due (by the task's clock).
    pub due: DateTime<Utc>,
    /// The service's context: messenger, identity, config.
    pub context: Context,
}

/// The future of a task registered with [`TaskEntrypoint::with_fn`].
pub type TaskFuture = BoxFuture<'static, Result<(), HandlerError>>;

type Handler = dyn Fn(TaskRun) -> TaskFuture + Send + Sync;

/// A periodic task of a service.
#[derive(Clone)]
pub struct TaskEntrypoint {
    pub(crate) name: String,
    pub(crate) schedule: Schedule,
    pub(crate) immediate: Option<bool>,
    pub(crate) time_zone: Option<String>,
    pub(crate) handler: Arc<Handler>,
}

impl std::fmt::Debug for TaskEntrypoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEntrypoint")
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .field("immediate", &self.immediate)
            .field("time_zone", &self.time_zone)
            .finish_non_exhaustive()
    }
}

impl TaskEntrypoint {
    /// A task named `name` (its function name, in logs and the registry catalogue).
    pub fn new<F, Fut>(name: impl Into<String>, schedule: Schedule, handler: F) -> Self
    where
        F: Fn(TaskRun) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        Self::boxed(
            name.into(),
            schedule,
            Arc::new(move |run| Box::pin(handler(run))),
        )
    }

    /// A task run by a plain function over shared state, `handler(&state, run)`. A service
    /// registers all its tasks this way through one closure type, so each task costs rustc
    /// only its function (generated adapters use it).
    pub fn with_fn<S: Send + Sync + 'static>(
        name: impl Into<String>,
        schedule: Schedule,
        state: Arc<S>,
        handler: fn(&Arc<S>, TaskRun) -> TaskFuture,
    ) -> Self {
        Self::boxed(
            name.into(),
            schedule,
            Arc::new(move |run| handler(&state, run)),
        )
    }

    fn boxed(name: String, schedule: Schedule, handler: Arc<Handler>) -> Self {
        Self {
            name,
            schedule,
            immediate: None,
            time_zone: None,
            handler,
        }
    }

    /// Runs at start too, before the first wait (default: true for intervals, false for cron).
    pub fn immediate(mut self, yes: bool) -> Self {
        self.immediate = Some(yes);
        self
    }

    /// The IANA time zone a cron schedule is read in (default UTC).
    pub fn time_zone(mut self, tz: impl Into<String>) -> Self {
        self.time_zone = Some(tz.into());
        self
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Parses a 5-field cron expression (minute, hour, day of month, month, day of week).
pub fn parse_cron(expr: &str) -> Result<Cron> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| Error::Definition(format!("invalid cron expression {expr:?}: {e}")))
}

/// A task with its schedule resolved from config.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedTask {
    ep: TaskEntrypoint,
    when: When,
    immediate: bool,
}

#[derive(Debug, Clone)]
enum When {
    Every(Duration),
    Cron(Box<Cron>, chrono_tz::Tz),
}

/// Checks a task definition that needs no config (literal schedules).
pub(crate) fn check(ep: &TaskEntrypoint) -> Result<()> {
    match &ep.schedule {
        Schedule::Every(d) if d.is_zero() => Err(Error::Definition(format!(
            "task `{}`: the interval must be positive",
            ep.name
        ))),
        Schedule::Cron(expr) => parse_cron(expr).map(|_| ()),
        _ => Ok(()),
    }?;
    if let Some(tz) = &ep.time_zone {
        parse_tz(&ep.name, tz)?;
    }
    Ok(())
}

fn parse_tz(task: &str, tz: &str) -> Result<chrono_tz::Tz> {
    tz.parse::<chrono_tz::Tz>()
        .map_err(|_| Error::Definition(format!("task `{task}`: unknown time zone {tz:?}")))
}

/// Resolves config keys and parses schedules.
pub(crate) fn resolve(ep: &TaskEntrypoint, config: &crate::Config) -> Result<ResolvedTask> {
    let tz = match &ep.time_zone {
        Some(t) => parse_tz(&ep.name, t)?,
        None => chrono_tz::UTC,
    };
    let when = match &ep.schedule {
        Schedule::Every(d) => When::Every(*d),
        Schedule::EveryConfig(key) => {
            let d = config.duration(key)?;
            if d.is_zero() {
                return Err(Error::Definition(format!(
                    "task `{}`: `{key}` must be positive",
                    ep.name
                )));
            }
            When::Every(d)
        }
        Schedule::Cron(expr) => When::Cron(Box::new(parse_cron(expr)?), tz),
        Schedule::CronConfig(key) => When::Cron(Box::new(parse_cron(&config.string(key)?)?), tz),
    };
    let immediate = ep.immediate.unwrap_or(matches!(when, When::Every(_)));
    Ok(ResolvedTask {
        ep: ep.clone(),
        when,
        immediate,
    })
}

impl ResolvedTask {
    pub(crate) fn name(&self) -> &str {
        &self.ep.name
    }

    /// The schedule as the registry catalogue shows it: seconds, or the cron string.
    pub(crate) fn catalogue_schedule(&self) -> serde_json::Value {
        match &self.when {
            When::Every(d) if d.subsec_nanos() == 0 => serde_json::json!(d.as_secs()),
            When::Every(d) => serde_json::json!(d.as_secs_f64()),
            When::Cron(c, _) => serde_json::json!(c.pattern.to_string()),
        }
    }
}

/// The next cron time strictly after `after`, in the cron's time zone.
fn next_cron(cron: &Cron, tz: chrono_tz::Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Runs one task's loop until `shutdown`.
pub(crate) async fn run_loop(
    task: ResolvedTask,
    context: Context,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let name = task.ep.name.clone();
    if task.immediate && !shutdown.is_cancelled() {
        run_once(&task, &context, clock.now()).await;
    }
    loop {
        let now = clock.now();
        let (due, wait) = match &task.when {
            When::Every(d) => (
                now + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX),
                *d,
            ),
            When::Cron(cron, tz) => match next_cron(cron, *tz, now) {
                Some(due) => (due, (due - now).to_std().unwrap_or_default()),
                None => {
                    tracing::warn!(task = %name, "the cron schedule has no next time; the task stops");
                    return;
                }
            },
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        if shutdown.is_cancelled() {
            return;
        }
        run_once(&task, &context, due).await;
        if let When::Cron(cron, tz) = &task.when {
            let mut skipped = 0u32;
            let mut t = due;
            let end = clock.now();
            while let Some(next) = next_cron(cron, *tz, t) {
                if next > end {
                    break;
                }
                skipped += 1;
                t = next;
            }
            if skipped > 0 {
                tracing::warn!(task = %name, skipped, "the run outlasted cron ticks; they were skipped");
            }
        }
    }
}

async fn run_once(task: &ResolvedTask, context: &Context, due: DateTime<Utc>) {
    let scope = FlowContext::fresh(EntrypointKind::Task, task.ep.name.as_str());
    let report_scope = scope.clone();
    let identity = context.container().identity();
    let span = tracing::info_span!(
        "task",
        service = %identity.service_name,
        instance_id = %identity.instance_id,
        task = %task.ep.name,
        flow_id = %scope.flow_id,
    );
    let run = TaskRun {
        name: task.ep.name.clone(),
        due,
        context: context.clone(),
    };
    let otel = context
        .messenger()
        .telemetry()
        .map(|t| t.task(&task.ep.name, &scope.flow_id));
    let fut = (task.ep.handler)(run);
    let started = std::time::Instant::now();
    let result = crate::observe::otel::instrument(
        otel.as_ref(),
        flow::scope(scope, AssertUnwindSafe(fut).catch_unwind()),
    )
    .instrument(span)
    .await;
    if let Some(otel) = otel {
        match &result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => otel.fail("error", &e.to_string()),
            Err(_) => otel.fail("panic", "the task panicked"),
        }
        otel.end();
    }
    if context.container().settings().metrics.enabled {
        crate::observe::metrics::task_ran(
            &context.container().identity().service_name,
            &task.ep.name,
            matches!(result, Ok(Ok(()))),
            started.elapsed(),
        );
    }
    if let Some(observer) = context.container().observer() {
        let outcome = match &result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the task panicked".to_owned()),
        };
        observer.task_ran(&task.ep.name, &report_scope.flow_id, outcome);
    }
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(task = %task.ep.name, error = %e, "task run failed; the next run is scheduled as usual");
            context
                .container()
                .report_uncaught(&report_scope, "TaskError", &e.to_string());
        }
        Err(panic) => {
            let msg = panic_message(&panic);
            tracing::error!(task = %task.ep.name, panic = %msg, "task run panicked; the next run is scheduled as usual");
            context
                .container()
                .report_uncaught(&report_scope, "Panic", &msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn cron_is_five_fields_and_validated() {
        assert!(parse_cron("*/5 * * * *").is_ok());
        assert!(parse_cron("0 3 * * MON-FRI").is_ok());
        assert!(
            parse_cron("* * * * * *").is_err(),
            "seconds are not part of Kontiki's cron"
        );
        assert!(parse_cron("61 * * * *").is_err());
    }

    #[test]
    fn next_cron_time_respects_the_time_zone() {
        let cron = parse_cron("0 3 * * *").unwrap();
        let after = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        assert_eq!(
            next_cron(&cron, chrono_tz::UTC, after),
            Some(Utc.with_ymd_and_hms(2026, 1, 11, 3, 0, 0).unwrap())
        );
        // 03:00 in Paris (UTC+1 in January) is 02:00 UTC.
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            next_cron(&cron, paris, after),
            Some(Utc.with_ymd_and_hms(2026, 1, 11, 2, 0, 0).unwrap())
        );
    }
}
