//! The count table of a scenario and its verdict.

use std::fmt;
use std::time::Duration;

/// What one scenario counted, and whether it passed.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// `1-broker-restart`, ...
    pub name: String,
    /// Messages (events or calls) sent.
    pub sent: u64,
    /// Publishes the broker confirmed, or calls answered with a result.
    pub confirmed: u64,
    /// Distinct confirmed messages handled.
    pub handled: u64,
    /// Extra deliveries handled (at-least-once).
    pub duplicated: u64,
    /// Confirmed messages never handled.
    pub lost: u64,
    /// Calls or publishes that ended in a typed error (each is counted, not a failure).
    pub errors: u64,
    /// Calls or publishes that did not return within their timeout + 1 s.
    pub hung: u64,
    /// The longest call or publish.
    pub max_latency: Duration,
    /// The timeout it is measured against.
    pub timeout: Duration,
    /// Further figures, `key value` (per instance counts, error kinds, recovery time...).
    pub notes: Vec<String>,
    /// Why it failed; empty when it passed.
    pub failures: Vec<String>,
    /// How long the scenario took.
    pub took: Duration,
}

impl Report {
    /// An empty report named `name`.
    pub fn new(name: &str, timeout: Duration) -> Report {
        Report {
            name: name.to_owned(),
            timeout,
            ..Report::default()
        }
    }

    /// Whether nothing failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Records a failure when `ok` is false.
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Applies the checks every scenario shares: nothing lost, nothing hung past the
    /// timeout + 1 s.
    pub fn check_common(&mut self) {
        let (lost, hung) = (self.lost, self.hung);
        self.check(lost == 0, || format!("{lost} confirmed messages were lost"));
        self.check(hung == 0, || {
            format!("{hung} calls or publishes hung past their timeout + 1 s")
        });
        let (max, limit) = (self.max_latency, self.timeout + Duration::from_secs(1));
        self.check(max <= limit, || {
            format!("the slowest call or publish took {max:?}, over the timeout + 1 s ({limit:?})")
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        writeln!(f, "== {} [{verdict}] ({:.1?})", self.name, self.took)?;
        writeln!(
            f,
            "   {:>8} {:>10} {:>8} {:>10} {:>6} {:>7} {:>5} {:>13}",
            "sent", "confirmed", "handled", "duplicated", "lost", "errors", "hung", "max/timeout"
        )?;
        writeln!(
            f,
            "   {:>8} {:>10} {:>8} {:>10} {:>6} {:>7} {:>5} {:>13}",
            self.sent,
            self.confirmed,
            self.handled,
            self.duplicated,
            self.lost,
            self.errors,
            self.hung,
            format!(
                "{:.2}s/{}s",
                self.max_latency.as_secs_f64(),
                self.timeout.as_secs()
            )
        )?;
        for note in &self.notes {
            writeln!(f, "   - {note}")?;
        }
        for failure in &self.failures {
            writeln!(f, "   FAILED: {failure}")?;
        }
        Ok(())
    }
}
