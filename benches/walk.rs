//! The directory walk alone, in one warm process: what `status` and a warm `report` pay to find what changed.
//!
//!     cargo bench --bench walk -- HIST [CALLS]
//!
//! HIST is a history folder (bench/gen.py's, e.g. the 1 GB Claude one); CALLS walks per thread count (30).
//! Prints p50 / p90 / min wall (ms) for 1 to 4 threads, twice over (the machine's noise shows as the
//! difference between the two rounds).

use std::time::Instant;

fn main() {
    // `cargo bench` adds `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(root) = args.first() else {
        eprintln!("usage: cargo bench --bench walk -- HIST [CALLS]");
        std::process::exit(2);
    };
    let calls: usize = args
        .get(1)
        .map_or(30, |n| n.parse().expect("CALLS is a number"));
    let root = std::path::PathBuf::from(root);
    for threads in [1, 2, 3, 4, 1, 2, 3, 4] {
        let mut ms = Vec::with_capacity(calls);
        let mut files = 0;
        for _ in 0..calls {
            let t = Instant::now();
            let walk = tokentrace::sources::walk::walk(&root, threads);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            files = walk.files.len();
        }
        ms.sort_by(f64::total_cmp);
        let at = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        println!(
            "{threads} threads: {files} files, p50 {:.2} ms, p90 {:.2} ms, min {:.2} ms",
            at(0.5),
            at(0.9),
            ms[0]
        );
    }
}
