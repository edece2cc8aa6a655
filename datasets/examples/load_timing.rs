//! Measures how long loading `locomo10.json` takes (build with `--release`).
//!
//! `cargo run --release -p memrl-datasets --example load_timing -- ../shared/data/locomo/locomo10.json`

use std::path::PathBuf;
use std::time::Instant;

use memrl_datasets::locomo::LocomoDataset;

fn main() {
    let Some(path) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: load_timing <locomo10.json>");
        std::process::exit(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            std::process::exit(1);
        }
    };
    let mut best = f64::INFINITY;
    let mut counts = None;
    for _ in 0..20 {
        let start = Instant::now();
        let dataset = match LocomoDataset::from_json_slice(&bytes, &path) {
            Ok(dataset) => dataset,
            Err(error) => {
                eprintln!("{error}");
                std::process::exit(1);
            }
        };
        best = best.min(start.elapsed().as_secs_f64());
        counts = Some(dataset.counts());
    }
    let start = Instant::now();
    let loaded = LocomoDataset::load(&path).map(|d| d.samples.len());
    let with_read = start.elapsed().as_secs_f64();
    println!("{counts:?}");
    println!("parse best of 20: {:.1} ms; read+parse once: {:.1} ms ({loaded:?} conversations)", best * 1e3, with_read * 1e3);
}
