//! Median times of `fmt` and `lint` on the 5,000-line IDL file of the `parse` benchmark.
//!
//! Run with: `cargo bench -p kontiki-idl --bench toolchain`

use std::time::{Duration, Instant};

#[path = "common/idl_gen.rs"]
mod idl_gen;

fn median(runs: usize, mut f: impl FnMut()) -> (Duration, Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[runs / 2], times[0], times[runs - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let text = idl_gen::generate(5_000);
    let lines = text.lines().count();
    let dir = std::env::temp_dir().join(format!("kontiki-toolchain-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bench.kontiki");
    std::fs::write(&path, &text).expect("write the bench file");
    let runs = 7;
    let (fmt, fmt_min, fmt_max) = median(runs, || {
        let out = kontiki_idl::fmt::format_source("bench.kontiki", &text).expect("formats");
        std::hint::black_box(out);
    });
    let config = kontiki_idl::lint::LintConfig::default();
    let (lint, lint_min, lint_max) = median(runs, || {
        let found = kontiki_idl::lint::lint_file(&path, &[], &config).expect("checks");
        std::hint::black_box(found);
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "fmt of {lines} lines: median {:.1} ms (min {:.1}, max {:.1}); lint (parse+check+rules): median {:.1} ms (min {:.1}, max {:.1}); {runs} runs each",
        ms(fmt),
        ms(fmt_min),
        ms(fmt_max),
        ms(lint),
        ms(lint_min),
        ms(lint_max),
    );
}
