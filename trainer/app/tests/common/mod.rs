//! Shared by the CLI tests: a small training config that runs in seconds, and a run killed
//! with SIGKILL at a chosen point.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `memrl ARGS --quiet` (output discarded) and kills it with SIGKILL once `ready` holds
/// (polled every 2 ms) and `extra_delay` has passed; panics when the run ends first or has not
/// reached `what` after 300 s.
#[allow(dead_code)] // not every test file kills a run
pub fn kill_when(args: &[&str], what: &str, ready: impl Fn() -> bool, extra_delay: Duration) {
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_memrl")).args(args).arg("--quiet").stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("memrl runs");
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < Duration::from_secs(300), "run never reached {what}");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("run ended ({status}) before {what}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(extra_delay);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
}

/// A valid training config: the `[run]` table with `run_table`'s lines, then a tiny model on
/// short `facts` episodes, no SFT, no evaluation.
#[allow(dead_code)] // not every test file trains the tiny config
pub fn tiny_config(run_table: &str) -> String {
    format!(
        r#"[run]
{run_table}

[env]
name = "facts"

[env.options]
entities = 1
distractor_entities = 1
capacity = 2
chunk_size = 2
questions = 1
updates_per_key = 1

[policy]
model = "tiny-2l-64d"

[rollout]
batch_size = 2
group_size = 2
max_new_tokens = 12
max_turns = 6
max_context_tokens = 512
task_pool = 4

[trainer]
lr = 1e-3
micro_batch_tokens = 1024

[eval]
episodes = 0
"#
    )
}
