//! `memrl sweep` owns its trials (Linux): SIGTERM to the sweep stops the running trial and the
//! sweep waits for it; SIGKILL of the sweep takes the trial down too (parent-death signal). No
//! trial trains on as an orphan beside the one a re-run of the sweep would resume.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// A trial that trains far longer than the test: it is always running when signalled.
fn base() -> String {
    common::tiny_config("name = \"long\"\nsteps = 1000000\ncheckpoint_every = 0\nplot_every = 0\nrollouts_every = 0")
}

/// Process ids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// True while process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).is_some_and(|state| state != "Z"))
}

fn signal(pid: u32, name: &str) {
    assert!(Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap().success());
}

/// Starts the sweep in `cwd` and waits (up to a generous deadline) for its trial process.
fn start_sweep(cwd: &Path) -> (Child, u32) {
    let mut sweep = Command::new(env!("CARGO_BIN_EXE_memrl"))
        .current_dir(cwd)
        .args(["sweep", "sweep.toml", "--quiet", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(&trial) = children_of(sweep.id()).first() {
            return (sweep, trial);
        }
        if let Some(status) = sweep.try_wait().unwrap() {
            panic!("the sweep ended ({status}) before its trial started");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the trial never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn signals_to_the_sweep_reach_its_trials() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("base.toml"), base()).unwrap();
    std::fs::write(tmp.path().join("sweep.toml"), "name = \"long\"\nbase = \"base.toml\"\nmetric = \"reward/mean\"\n").unwrap();

    // SIGTERM: forwarded; the sweep waits for the trial, then says how to resume.
    let (sweep, trial) = start_sweep(tmp.path());
    signal(sweep.id(), "TERM");
    let out = sweep.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let orphan = alive(trial);
    if orphan {
        signal(trial, "KILL");
    }
    assert!(!orphan, "the trial outlived the sweep it belonged to; sweep stderr: {stderr}");
    assert!(!out.status.success() && stderr.contains("stopped by signal 15"), "{stderr}");

    // SIGKILL: the sweep cannot forward anything; the parent-death signal stops the trial.
    let (mut sweep, trial) = start_sweep(tmp.path());
    signal(sweep.id(), "KILL");
    sweep.wait().unwrap();
    let start = Instant::now();
    while alive(trial) && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let orphan = alive(trial);
    if orphan {
        signal(trial, "KILL");
    }
    assert!(!orphan, "the trial outlived its SIGKILLed sweep");
}
