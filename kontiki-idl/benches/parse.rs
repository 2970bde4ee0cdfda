//! Generates a 5,000-line IDL file and prints the median parse + check time.
//!
//! Run with: `cargo bench -p kontiki-idl --bench parse`

use std::time::{Duration, Instant};

#[path = "common/idl_gen.rs"]
mod idl_gen;

fn main() {
    let text = idl_gen::generate(5_000);
    let lines = text.lines().count();
    let runs = 7;
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let model =
                kontiki_idl::load_str("bench.kontiki", &text).expect("the generated file is valid");
            let elapsed = start.elapsed();
            std::hint::black_box(model);
            elapsed
        })
        .collect();
    times.sort();
    let median = times[runs / 2];
    println!(
        "parse+check of {lines} lines ({} KiB): median {:.1} ms over {runs} runs (min {:.1} ms, max {:.1} ms)",
        text.len() / 1024,
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3,
    );
}
