//! Periodic tasks: intervals (literal and from config), cron on a clock the test drives, no
//! overlap, errors and panics that do not stop the loop, and shutdown during a run. Tokio's
//! clock is paused, so schedules advance without waiting.

use chrono::{DateTime, TimeZone as _, Utc};
use kontiki_rt::task::TokioClock;
use kontiki_rt::{
    Config, HandlerError, RunningService, Schedule, Service, TaskEntrypoint, TaskRun,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

fn config(extra: &str) -> Config {
    Config::from_yaml_str(
        "tasks.yaml",
        &format!(
            "kontiki:\n  amqp:\n    disable: true\n  shutdown:\n    grace_seconds: 5\n{extra}"
        ),
    )
    .unwrap()
}

async fn start(builder: kontiki_rt::ServiceBuilder, extra: &str) -> RunningService {
    builder.build().unwrap().start(config(extra)).await.unwrap()
}

fn recorder(
    tx: mpsc::UnboundedSender<DateTime<Utc>>,
) -> impl Fn(TaskRun) -> std::future::Ready<Result<(), HandlerError>> {
    move |run: TaskRun| {
        let _ = tx.send(run.due);
        std::future::ready(Ok(()))
    }
}

async fn take(rx: &mut mpsc::UnboundedReceiver<DateTime<Utc>>, n: usize) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            tokio::time::timeout(Duration::from_secs(2 * 86_400), rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    out
}

#[tokio::test(start_paused = true)]
async fn interval_tasks_run_immediately_then_every_interval() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let t0 = tokio::time::Instant::now();
    let svc = start(
        Service::builder("tasks-interval").task(TaskEntrypoint::new(
            "tick",
            Schedule::Every(Duration::from_secs(10)),
            recorder(tx),
        )),
        "",
    )
    .await;
    take(&mut rx, 4).await;
    // Immediate run, then 10 s, 20 s, 30 s later.
    assert_eq!(t0.elapsed().as_secs(), 30);
    svc.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_interval_can_come_from_config() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let t0 = tokio::time::Instant::now();
    let svc = start(
        Service::builder("tasks-config").task(
            TaskEntrypoint::new(
                "tick",
                Schedule::EveryConfig("app.tick_seconds".into()),
                recorder(tx),
            )
            .immediate(false),
        ),
        "app:\n  tick_seconds: 2.5\n",
    )
    .await;
    take(&mut rx, 2).await;
    assert_eq!(t0.elapsed(), Duration::from_millis(5000));
    svc.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cron_tasks_fire_on_their_minutes_and_not_at_start() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start_at = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 30).unwrap();
    let svc = start(
        Service::builder("tasks-cron")
            .clock(Arc::new(TokioClock::starting_at(start_at)))
            .task(TaskEntrypoint::new(
                "every_minute",
                Schedule::Cron("* * * * *".into()),
                recorder(tx),
            )),
        "",
    )
    .await;
    let dues = take(&mut rx, 3).await;
    let minute = |m| Utc.with_ymd_and_hms(2026, 3, 1, 10, m, 0).unwrap();
    assert_eq!(dues, vec![minute(1), minute(2), minute(3)]);
    svc.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cron_in_a_time_zone_and_from_config() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start_at = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
    let svc = start(
        Service::builder("tasks-cron-tz")
            .clock(Arc::new(TokioClock::starting_at(start_at)))
            .task(
                TaskEntrypoint::new(
                    "nightly",
                    Schedule::CronConfig("app.nightly".into()),
                    recorder(tx),
                )
                .time_zone("Europe/Paris"),
            ),
        "app:\n  nightly: \"0 3 * * *\"\n",
    )
    .await;
    // 03:00 in Paris (UTC+1 in January) is 02:00 UTC.
    assert_eq!(
        take(&mut rx, 1).await,
        vec![Utc.with_ymd_and_hms(2026, 1, 11, 2, 0, 0).unwrap()]
    );
    svc.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn runs_never_overlap_and_failures_do_not_stop_the_loop() {
    let running = Arc::new(AtomicUsize::new(0));
    let max_running = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel::<usize>();
    let (r, m, n) = (running.clone(), max_running.clone(), runs.clone());
    let svc = start(
        Service::builder("tasks-overlap").task(TaskEntrypoint::new(
            "slow",
            Schedule::Every(Duration::from_millis(10)),
            move |_run: TaskRun| {
                let (running, max_running, runs, tx) =
                    (r.clone(), m.clone(), n.clone(), tx.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max_running.fetch_max(now, Ordering::SeqCst);
                    // Each run lasts ten intervals.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    let i = runs.fetch_add(1, Ordering::SeqCst);
                    let _ = tx.send(i);
                    match i {
                        0 => Err(HandlerError::server("first run fails")),
                        1 => panic!("second run panics"),
                        _ => Ok(()),
                    }
                }
            },
        )),
        "",
    )
    .await;
    for expected in 0..4 {
        assert_eq!(rx.recv().await, Some(expected));
    }
    assert_eq!(max_running.load(Ordering::SeqCst), 1, "runs overlapped");
    svc.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_current_run_finish_and_starts_no_new_one() {
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicUsize::new(0));
    let (f, n) = (finished.clone(), runs.clone());
    let svc = start(
        Service::builder("tasks-shutdown").task(TaskEntrypoint::new(
            "long",
            Schedule::Every(Duration::from_millis(1)),
            move |_run: TaskRun| {
                let (finished, runs, started_tx) = (f.clone(), n.clone(), started_tx.clone());
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let _ = started_tx.send(());
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    finished.store(true, Ordering::SeqCst);
                    Ok(())
                }
            },
        )),
        "",
    )
    .await;
    started.recv().await.unwrap();
    svc.shutdown().await;
    assert!(
        finished.load(Ordering::SeqCst),
        "shutdown returned before the run finished"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "a run started after shutdown began"
    );
}
