//! Generates a 5,000-line IDL file and prints the median parse + check time, then the same
//! with every task's cron expression distinct (the checker parses each distinct one once).
//!
//! Run with: `cargo bench -p kontiki-idl --bench parse`

use std::fmt::Write as _;
use std::time::{Duration, Instant};

#[path = "common/idl_gen.rs"]
mod idl_gen;

const RUNS: usize = 7;

/// The sorted times of `RUNS` parse + check runs of `text`.
fn times(text: &str) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let model =
                kontiki_idl::load_str("bench.kontiki", text).expect("the generated file is valid");
            let elapsed = start.elapsed();
            std::hint::black_box(model);
            elapsed
        })
        .collect();
    times.sort();
    times
}

/// `text` with its k-th cron expression made `m h * * MON-FRI` from k.
fn distinct_crons(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (k, part) in text.split("\"*/5 * * * MON-FRI\"").enumerate() {
        if k > 0 {
            let _ = write!(out, "\"{} {} * * MON-FRI\"", k % 60, k / 60 % 24);
        }
        out.push_str(part);
    }
    out
}

fn main() {
    let text = idl_gen::generate(5_000);
    let lines = text.lines().count();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let t = times(&text);
    println!(
        "parse+check of {lines} lines ({} KiB): median {:.1} ms over {RUNS} runs (min {:.1} ms, max {:.1} ms)",
        text.len() / 1024,
        ms(t[RUNS / 2]),
        ms(t[0]),
        ms(t[RUNS - 1]),
    );
    let distinct = distinct_crons(&text);
    let crons = text.matches("cron \"").count();
    let t = times(&distinct);
    println!(
        "parse+check of the same with its {crons} cron expressions distinct: median {:.1} ms (min {:.1} ms, max {:.1} ms)",
        ms(t[RUNS / 2]),
        ms(t[0]),
        ms(t[RUNS - 1]),
    );
}
