//! Per-thread tallies of the durations (and, for HTTP routes, the statuses) of the hot paths,
//! rendered from the tallies or handed to the `metrics` facade in batches.
//!
//! Recording a duration through the facade straight away bumps atomics that every request of
//! the series shares: the exporter histogram's sample list and the status counter, each with a
//! generation count beside it. On two cores that moves their cache lines from core to core on
//! every request, which the wall clock sees (3–4 % of a health check's requests/s on the
//! benchmark machine; docs/PERFORMANCE.md) and an instruction count does not. Here each thread
//! adds to a shard of its own (a cache line apart from the others). With kontiki-rt's exporter,
//! `/metrics` renders the histograms from the tallies ([`render_all`]); with another recorder,
//! [`flush_all`] hands the sums to the facade: before `/metrics` renders, every second from a
//! thread of its own, and when a series' metrics are dropped.
//!
//! What the facade receives is what it would have received sample by sample, except for when:
//! per bucket of [`BUCKET_NANOS`], the number of answers and their mean duration, recorded that
//! many times (`Histogram::record_many`). The mean of durations that fell in one bucket lies in
//! that bucket, so bucket counts and `_count` are exact and `_sum` is exact up to rounding.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::BUCKET_NANOS;

/// Buckets, the last one above every bound (`+Inf`).
const BUCKETS: usize = BUCKET_NANOS.len() + 1;

/// One thread's tallies, on cache lines of its own.
#[repr(align(128))]
struct Shard<const S: usize> {
    /// Answers per bucket.
    count: [AtomicU64; BUCKETS],
    /// Their durations summed, in nanoseconds.
    nanos: [AtomicU64; BUCKETS],
    /// Answers per status slot (the caller's numbering).
    statuses: [AtomicU64; S],
}

impl<const S: usize> Shard<S> {
    fn new() -> Self {
        Self {
            count: [const { AtomicU64::new(0) }; BUCKETS],
            nanos: [const { AtomicU64::new(0) }; BUCKETS],
            statuses: [const { AtomicU64::new(0) }; S],
        }
    }
}

/// The tallies of one series, one shard per thread (threads share a shard past the count).
pub(super) struct Tallies<const S: usize> {
    shards: Box<[Shard<S>]>,
}

impl<const S: usize> std::fmt::Debug for Tallies<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tallies")
            .field("shards", &self.shards.len())
            .finish()
    }
}

/// A bucket's answers and their mean duration in seconds, as the facade records them.
pub(super) struct Batch {
    pub(super) count: usize,
    pub(super) mean_seconds: f64,
}

impl<const S: usize> Tallies<S> {
    /// Twice as many shards as the machine has cores (at least 2, at most 64), so that the
    /// runtime's workers seldom share one.
    pub(super) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, std::num::NonZero::get);
        let n = (2 * cores).next_power_of_two().clamp(2, 64);
        Self {
            shards: (0..n).map(|_| Shard::new()).collect(),
        }
    }

    fn shard(&self) -> &Shard<S> {
        // `shards.len()` is a power of two.
        &self.shards[thread_number() & (self.shards.len() - 1)]
    }

    /// One answer that took `nanos`, with status slot `status` (none: the caller counts it
    /// itself).
    pub(super) fn add(&self, nanos: u64, status: Option<usize>) {
        let shard = self.shard();
        let b = BUCKET_NANOS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(BUCKETS - 1);
        shard.count[b].fetch_add(1, Relaxed);
        shard.nanos[b].fetch_add(nanos, Relaxed);
        if let Some(slot) = status.and_then(|s| shard.statuses.get(s)) {
            slot.fetch_add(1, Relaxed);
        }
    }

    /// Takes the durations since the last call, as the facade records them: bucket by bucket,
    /// how many and their mean.
    pub(super) fn take_durations(&self, mut batch: impl FnMut(Batch)) {
        for b in 0..BUCKETS {
            let count = self.take_sum(|s| &s.count[b]);
            if count == 0 {
                // A duration added after its count was taken waits for the next batch.
                continue;
            }
            let nanos = self.take_sum(|s| &s.nanos[b]);
            batch(Batch {
                count: usize::try_from(count).unwrap_or(usize::MAX),
                mean_seconds: in_bucket(b, nanos as f64 / count as f64 / 1e9),
            });
        }
    }

    /// The answers per status slot since the last call.
    pub(super) fn take_statuses(&self, mut status: impl FnMut(usize, u64)) {
        for slot in 0..S {
            let n = self.take_sum(|s| &s.statuses[slot]);
            if n > 0 {
                status(slot, n);
            }
        }
    }

    /// One counter summed over the shards, each set back to zero.
    fn take_sum(&self, counter: impl Fn(&Shard<S>) -> &AtomicU64) -> u64 {
        self.shards.iter().fold(0, |sum: u64, s| {
            sum.wrapping_add(counter(s).swap(0, Relaxed))
        })
    }

    /// All durations so far (none taken): answers per bucket, and their sum in seconds.
    pub(super) fn read_durations(&self) -> ([u64; BUCKETS], f64) {
        let mut counts = [0u64; BUCKETS];
        let mut nanos = 0u128;
        for s in &self.shards {
            for ((total, count), sum) in counts.iter_mut().zip(&s.count).zip(&s.nanos) {
                *total += count.load(Relaxed);
                nanos += u128::from(sum.load(Relaxed));
            }
        }
        (counts, nanos as f64 / 1e9)
    }
}

/// Writes the Prometheus text of a histogram of `_seconds` (a family's sample lines, no `HELP`
/// or `TYPE`) from its counts per bucket and sum: `labels` are the series' labels, written
/// (`service="a",route="GET /x"`).
pub(super) fn write_histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    counts: &[u64; BUCKETS],
    sum: f64,
) {
    use std::fmt::Write as _;
    let mut cumulative = 0;
    for (b, count) in counts.iter().enumerate() {
        cumulative += count;
        match BUCKET_NANOS.get(b) {
            Some(&bound) => {
                let le = bound as f64 / 1e9;
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            None => {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
            }
        }
    }
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

/// `seconds` kept inside bucket `b` (above the bound below, at most its own). A mean of
/// durations of one bucket is inside it already, unless a flush took an answer's count before
/// its duration was added (then the duration comes with the next batch).
fn in_bucket(b: usize, seconds: f64) -> f64 {
    let bound = |i: usize| BUCKET_NANOS[i] as f64 / 1e9;
    let above = if b == 0 {
        0.0
    } else {
        // The smallest f64 above the lower bound (bounds are positive).
        f64::from_bits(bound(b - 1).to_bits() + 1)
    };
    let seconds = seconds.max(above);
    if b < BUCKET_NANOS.len() {
        seconds.min(bound(b))
    } else {
        seconds
    }
}

/// This thread's number, given on first use.
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Relaxed);
    }
    NUMBER.with(|n| *n)
}

/// What [`flush_all`] flushes and [`render_all`] renders.
pub(super) trait Flush: Send + Sync {
    /// Hands the tallies since the last flush to the facade.
    fn flush(&self);
    /// The family whose sample lines [`render`](Flush::render) writes: its name, and what its
    /// `HELP` line says.
    fn family(&self) -> (&'static str, &'static str);
    /// Writes the sample lines of what the facade does not record (see [`write_histogram`]).
    fn render(&self, out: &mut String);
}

/// Everything that has tallies, registered when made.
static REGISTERED: Mutex<Vec<Weak<dyn Flush>>> = Mutex::new(Vec::new());

/// Registers `it` for [`flush_all`] and [`render_all`] (until it is dropped). The first
/// registration of one that `flushes` (hands tallies to the facade) starts the thread that
/// flushes every second.
pub(super) fn register(it: &Arc<dyn Flush>, flushes: bool) {
    static FLUSHER: std::sync::Once = std::sync::Once::new();
    if flushes {
        FLUSHER.call_once(|| {
            let started = std::thread::Builder::new()
                .name("kontiki-metrics-flush".to_owned())
                .spawn(|| {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        flush_all();
                    }
                });
            if let Err(e) = started {
                tracing::warn!(error = %e, "metrics: no flush thread; HTTP route metrics are handed over only when /metrics is read");
            }
        });
    }
    let mut all = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(it));
}

fn live() -> Vec<Arc<dyn Flush>> {
    REGISTERED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}

/// Hands every tally to the facade.
pub(super) fn flush_all() {
    for it in live() {
        it.flush();
    }
}

/// Appends the families rendered from tallies (see [`Flush::render`]) to `out`, the
/// exporter's text: each family that has lines, after its `HELP` and `TYPE`.
pub(super) fn render_all(out: &mut String) {
    use std::fmt::Write as _;
    let mut families = std::collections::BTreeMap::<(&str, &str), String>::new();
    for it in live() {
        it.render(families.entry(it.family()).or_default());
    }
    for (family, lines) in families {
        if lines.is_empty() {
            continue;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let (name, help) = family;
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} histogram\n{lines}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_counts_per_bucket_and_the_sum() {
        let t = Tallies::<2>::new();
        // Around every bound: at it (inside), one nanosecond above (the next bucket).
        let mut expected = [0usize; BUCKETS];
        let mut sum = 0u128;
        for (i, &bound) in BUCKET_NANOS.iter().enumerate() {
            for nanos in [bound - 1, bound, bound + 1] {
                t.add(nanos, Some(i % 2));
                expected[if nanos <= bound { i } else { i + 1 }] += 1;
                sum += u128::from(nanos);
            }
        }
        t.add(u64::MAX / 4, None);
        expected[BUCKETS - 1] += 1;
        sum += u128::from(u64::MAX / 4);
        let (cumulative, read_sum) = t.read_durations();
        assert_eq!(cumulative.map(|c| c as usize), expected);
        let want = sum as f64 / 1e9;
        assert!(
            (read_sum - want).abs() <= want * 1e-12,
            "{read_sum} vs {want}"
        );
        let mut got = [0usize; BUCKETS];
        let mut got_sum = 0.0;
        let mut statuses = [0u64; 2];
        t.take_durations(|b| {
            // The exporter places the mean by the same bounds (`value <= bound`): metrics.rs
            // gives it these, in seconds.
            let bucket = BUCKET_NANOS
                .iter()
                .position(|&n| b.mean_seconds <= n as f64 / 1e9)
                .unwrap_or(BUCKETS - 1);
            got[bucket] += b.count;
            got_sum += b.mean_seconds * b.count as f64;
        });
        t.take_statuses(|slot, n| statuses[slot] += n);
        assert_eq!(got, expected);
        assert!(
            (got_sum - want).abs() <= want * 1e-12,
            "{got_sum} vs {want}"
        );
        assert_eq!(statuses, [21, 21]);
        // Taken: nothing is handed over twice.
        t.take_durations(|_| panic!("taken twice"));
        t.take_statuses(|_, _| panic!("taken twice"));
    }

    #[test]
    fn a_histogram_renders_cumulative_buckets() {
        let mut counts = [0u64; BUCKETS];
        counts[0] = 2;
        counts[3] = 1;
        counts[BUCKETS - 1] = 1;
        let mut out = String::new();
        write_histogram(&mut out, "x_seconds", "a=\"b\"", &counts, 12.5);
        assert!(
            out.starts_with("x_seconds_bucket{a=\"b\",le=\"0.0005\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{a=\"b\",le=\"0.005\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{a=\"b\",le=\"10\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{a=\"b\",le=\"+Inf\"} 4\n"),
            "{out}"
        );
        assert!(
            out.ends_with("x_seconds_sum{a=\"b\"} 12.5\nx_seconds_count{a=\"b\"} 4\n"),
            "{out}"
        );
    }

    #[test]
    fn a_mean_is_kept_inside_its_bucket() {
        assert_eq!(in_bucket(0, 0.001), 0.0005);
        assert!(in_bucket(1, 0.0001) > 0.0005);
        assert!(in_bucket(1, 0.0001) <= 0.001);
        assert_eq!(in_bucket(BUCKETS - 1, 99.0), 99.0);
        assert!(in_bucket(BUCKETS - 1, 1.0) > 10.0);
    }

    #[test]
    fn threads_tally_apart_and_all_count() {
        let t = Arc::new(Tallies::<1>::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        t.add(700_000, Some(0));
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        let mut count = 0;
        let mut answers = 0;
        t.take_durations(|b| count += b.count);
        t.take_statuses(|_, n| answers += n);
        assert_eq!((count, answers), (4000, 4000));
    }
}
