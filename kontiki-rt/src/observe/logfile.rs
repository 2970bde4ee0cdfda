//! Kontiki's log files: with `logging.directory` set, a service writes its log lines to
//! `<directory>/<sanitized service name>-<12 hex of the instance id>.log` in Kontiki's default
//! format, so kontiki-tui's Logs tab and flow excerpts read a Rust service like a Python one:
//!
//! ```text
//! 2026-12-04 05:15:37,123 - 3f2a9c1b7d4e - INFO - [flow=abc123]       - message key=value
//! ```
//!
//! (`%(asctime)s - %(short_instance_id)s - %(levelname)s - %(flow_id)-19s - %(message)s`,
//! protocol §4.) The [`KontikiLogLayer`] writes nothing until a service with
//! `logging.directory` starts ([`open`]). A line goes to the file of the instance whose handler
//! span it was logged in (several services in one process each get their own file), else to
//! the first file opened. Lines at INFO and above, as Kontiki's `kontiki` logger.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// One open log file.
#[derive(Debug)]
struct Sink {
    short_id: String,
    file: Mutex<std::io::LineWriter<std::fs::File>>,
}

#[derive(Debug, Default)]
struct Files {
    /// By full instance id.
    by_instance: HashMap<String, Arc<Sink>>,
    /// The first file opened: lines logged outside a handler span.
    first: Option<Arc<Sink>>,
}

static ANY_OPEN: AtomicBool = AtomicBool::new(false);
static FILES: RwLock<Option<Files>> = RwLock::new(None);

/// Kontiki's log file name of an instance: `<sanitized service>-<12 hex>.log`.
pub fn file_name(service_name: &str, instance_id: &str) -> String {
    let safe: String = service_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-{}.log", short_instance_id(instance_id))
}

/// The first 12 hex digits of an instance id (dashes removed), as Kontiki logs it.
pub(crate) fn short_instance_id(instance_id: &str) -> String {
    instance_id.chars().filter(|c| *c != '-').take(12).collect()
}

/// Opens (appending) the log file of `instance_id` in `directory`, creating the directory;
/// from now on lines logged in that instance's handlers, and lines outside any handler if it
/// is the first file, go there. Returns the file's path.
pub(crate) fn open(
    directory: &Path,
    service_name: &str,
    instance_id: &str,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(directory)?;
    let path = directory.join(file_name(service_name, instance_id));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let sink = Arc::new(Sink {
        short_id: short_instance_id(instance_id),
        file: Mutex::new(std::io::LineWriter::new(file)),
    });
    let mut guard = FILES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let files = guard.get_or_insert_with(Files::default);
    files
        .by_instance
        .insert(instance_id.to_owned(), sink.clone());
    files.first.get_or_insert(sink);
    drop(guard);
    if !ANY_OPEN.swap(true, Ordering::AcqRel) {
        // `WhileOpen` refused every callsite so far: ask them again.
        tracing::callsite::rebuild_interest_cache();
    }
    Ok(path)
}

/// Stops writing `instance_id`'s file (at shutdown).
pub(crate) fn close(instance_id: &str) {
    let mut files = FILES
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(files) = files.as_mut() {
        files.by_instance.remove(instance_id);
    }
}

/// The span fields the log line needs, kept in the span's extensions.
#[derive(Debug, Default, Clone)]
struct SpanIds {
    flow_id: Option<String>,
    instance_id: Option<String>,
}

impl Visit for SpanIds {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "flow_id" if !value.is_empty() => self.flow_id = Some(value.to_owned()),
            "instance_id" if !value.is_empty() => self.instance_id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "flow_id" | "instance_id") {
            // `%value` fields arrive here: their Display text, as Debug of a display wrapper.
            let text = format!("{value:?}");
            self.record_str(field, &text);
        }
    }
}

/// The message and the other fields of an event, as Kontiki's `%(message)s`.
#[derive(Default)]
struct Message {
    message: String,
    fields: String,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

/// The filter [`cli::init_tracing`](crate::cli::init_tracing) puts on [`KontikiLogLayer`]:
/// `targets`, and only once a file is open. Until then the layer wants no callsite, so a span
/// or event no other layer wants (an INFO request span under `RUST_LOG=warn`) is not created
/// at all, instead of being created for a layer that would drop it (the registry makes every
/// span some per-layer filter might want). [`open`] has tracing ask every callsite again when
/// the first file opens.
#[cfg(feature = "cli")]
#[derive(Debug, Clone)]
pub(crate) struct WhileOpen(pub(crate) tracing_subscriber::filter::Targets);

#[cfg(feature = "cli")]
impl WhileOpen {
    fn wants(&self, meta: &tracing::Metadata<'_>) -> bool {
        ANY_OPEN.load(Ordering::Acquire) && self.0.would_enable(meta.target(), meta.level())
    }
}

#[cfg(feature = "cli")]
impl<S> tracing_subscriber::layer::Filter<S> for WhileOpen {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        self.wants(meta)
    }

    fn callsite_enabled(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if self.wants(meta) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        tracing_subscriber::layer::Filter::<S>::max_level_hint(&self.0)
    }
}

/// The tracing layer that writes Kontiki's log files (`logging.directory`, for kontiki-tui).
///
/// `kontiki_rt::cli::init_tracing` (feature `cli`) installs it; an
/// application with a subscriber of its own adds it there:
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let subscriber = tracing_subscriber::registry().with(kontiki_rt::KontikiLogLayer);
/// let _ = tracing::subscriber::set_global_default(subscriber);
/// ```
///
/// It writes nothing until a service with `logging.directory` starts; then each line at INFO
/// and above goes to the file of the instance whose handler span logged it, else to the
/// first file opened.
#[derive(Debug, Default, Clone, Copy)]
pub struct KontikiLogLayer;

impl<S> Layer<S> for KontikiLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        // No file open: nothing will read the ids, so a handler span costs no allocation here.
        if !ANY_OPEN.load(Ordering::Acquire) {
            return;
        }
        let mut ids = SpanIds::default();
        attrs.record(&mut ids);
        if (ids.flow_id.is_some() || ids.instance_id.is_some())
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(ids);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if !ANY_OPEN.load(Ordering::Acquire) {
            return;
        }
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            let mut ids = ext.get_mut::<SpanIds>().cloned().unwrap_or_default();
            values.record(&mut ids);
            ext.replace(ids);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // Nothing to do until a service opened a file: one atomic load per event.
        if !ANY_OPEN.load(Ordering::Acquire) || *event.metadata().level() > Level::INFO {
            return;
        }
        let (mut flow_id, mut instance_id) = (None, None);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(ids) = span.extensions().get::<SpanIds>() {
                    flow_id = flow_id.or_else(|| ids.flow_id.clone());
                    instance_id = instance_id.or_else(|| ids.instance_id.clone());
                }
                if flow_id.is_some() && instance_id.is_some() {
                    break;
                }
            }
        }
        let sink = {
            let files = FILES
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(files) = files.as_ref() else { return };
            match instance_id
                .as_deref()
                .and_then(|i| files.by_instance.get(i))
            {
                Some(s) => s.clone(),
                None => match &files.first {
                    Some(s) => s.clone(),
                    None => return,
                },
            }
        };
        let mut msg = Message::default();
        event.record(&mut msg);
        let flow = match flow_id {
            Some(f) => format!("[flow={f}]"),
            None => "[no flow]".to_owned(),
        };
        let level = match *event.metadata().level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            _ => "INFO",
        };
        let line = format!(
            "{} - {} - {level} - {flow:<19} - {}{}\n",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f"),
            sink.short_id,
            msg.message.replace('\n', " "),
            msg.fields.replace('\n', " "),
        );
        let mut file = sink
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = file.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kontiki() {
        assert_eq!(
            file_name("billing api/v2", "3f2a9c1b-7d4e-4f00-9a1b-000000000000"),
            "billing_api_v2-3f2a9c1b7d4e.log"
        );
        assert_eq!(short_instance_id("ab-cd"), "abcd");
    }
}
