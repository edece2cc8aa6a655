//! Shared by the bad-input tests: a small training config that runs in seconds.

/// A valid training config: the `[run]` table with `run_table`'s lines, then a tiny model on
/// short `facts` episodes, no SFT, no evaluation.
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
