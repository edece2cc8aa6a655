//! Echo segments for SFT: synthetic turns whose whole response is a copy of lines from the
//! demonstrations' own prompts (`Repeat:` then the lines; the reply is the same lines).
//!
//! A random-init model learns the tool-call format from a few hundred demonstrations but must
//! also learn to *copy*: a name and a value from the fact into `memory_add`, a value from memory
//! into `answer`. In a demonstration that is one to three tokens of ~25; in an echo segment every
//! response token is a copy, of the same words in the same contexts. `sft.echo_segments` mixes
//! this many into each SFT epoch (they are not oversampled with the answer turns).

use memrl_envs::message::{ChatMessage, Role};
use memrl_rl::rollout::context::ChatCodec;
use memrl_rl::segments::Segment;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Trajectory ids of echo segments start here, far above the demonstrations' ids.
const ECHO_TRAJECTORY_BASE: u64 = 1 << 62;

/// The lines of the last user message of a rendered prompt that have at least three words
/// (facts, memory entries, the tracked-people line), without chat-template markup.
fn prompt_lines(prompt: &str) -> Vec<String> {
    let user = prompt.rsplit("user\n").next().unwrap_or_default();
    let user = user.split("<|im_end|>").next().unwrap_or_default();
    user.lines().map(str::trim).filter(|l| l.split_whitespace().count() >= 3).map(str::to_string).collect()
}

/// `count` echo segments of one to three lines each, drawn with `seed` from the prompts of
/// `demos`; the response ends with `stop_id`, like a policy turn.
pub fn echo_segments(codec: &dyn ChatCodec, demos: &[Segment], count: usize, stop_id: u32, seed: u64) -> anyhow::Result<Vec<Segment>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut pool: Vec<String> = Vec::new();
    for s in demos.iter().take(4096) {
        pool.extend(prompt_lines(&codec.decode(&s.prompt_ids)?));
    }
    pool.sort();
    pool.dedup();
    anyhow::ensure!(!pool.is_empty(), "sft.echo_segments: the demonstrations' prompts have no line of three or more words to echo");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let n = rng.random_range(1..=3);
        let lines: Vec<&str> = (0..n).map(|_| pool.choose(&mut rng).map(String::as_str).unwrap_or_default()).collect();
        let text = lines.join("\n");
        let messages = [ChatMessage::new(Role::User, format!("Repeat:\n{text}"))];
        let prompt_ids = codec.encode(&codec.render(&messages, &[], true)?)?;
        let mut response_ids = codec.encode(&text)?;
        response_ids.push(stop_id);
        let id = ECHO_TRAJECTORY_BASE + i as u64;
        out.push(Segment {
            trajectory_id: id,
            group_id: id,
            index: 0,
            is_last: true,
            loss_mask: vec![1; response_ids.len()],
            rollout_logprobs: vec![0.0; response_ids.len()],
            prompt_ids,
            response_ids,
            policy_version: 0,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use memrl_rl::rollout::context::CodecError;
    use serde_json::Value;

    /// Bytes as token ids; `<|im_end|>` is id 256.
    struct ByteCodec;

    impl ChatCodec for ByteCodec {
        fn render(&self, messages: &[ChatMessage], _tools: &[Value], add_generation_prompt: bool) -> Result<String, CodecError> {
            let mut out: String =
                messages.iter().map(|m| format!("<|im_start|>{}\n{}<|im_end|>\n", format!("{:?}", m.role).to_lowercase(), m.content)).collect();
            if add_generation_prompt {
                out.push_str("<|im_start|>assistant\n");
            }
            Ok(out)
        }
        fn encode(&self, text: &str) -> Result<Vec<u32>, CodecError> {
            let mut ids = Vec::new();
            for (i, part) in text.split("<|im_end|>").enumerate() {
                if i > 0 {
                    ids.push(256);
                }
                ids.extend(part.bytes().map(u32::from));
            }
            Ok(ids)
        }
        fn decode(&self, ids: &[u32]) -> Result<String, CodecError> {
            Ok(ids.iter().map(|&i| if i == 256 { "<|im_end|>".to_string() } else { char::from(i as u8).to_string() }).collect())
        }
        fn renders_tools(&self) -> bool {
            false
        }
    }

    fn demo(prompt: &str) -> Segment {
        Segment {
            trajectory_id: 1,
            group_id: 1,
            index: 0,
            is_last: true,
            prompt_ids: ByteCodec.encode(prompt).unwrap(),
            response_ids: vec![1, 256],
            loss_mask: vec![1, 1],
            rollout_logprobs: vec![0.0; 2],
            policy_version: 0,
        }
    }

    #[test]
    fn echo_segments_copy_prompt_lines_and_are_seeded() {
        let demos = [demo("<|im_start|>user\nTrack: Vera.\nVera has a dog.\n[m1] Bob pet: cat<|im_end|>\n<|im_start|>assistant\n")];
        let lines = ["Vera has a dog.", "[m1] Bob pet: cat"];
        let echoes = echo_segments(&ByteCodec, &demos, 20, 256, 7).unwrap();
        assert_eq!(echoes.len(), 20);
        for e in &echoes {
            let response = ByteCodec.decode(&e.response_ids).unwrap();
            let body = response.strip_suffix("<|im_end|>").expect("ends with the stop token");
            assert!(body.split('\n').all(|l| lines.contains(&l)), "{body:?}");
            assert!(ByteCodec.decode(&e.prompt_ids).unwrap().contains(&format!("Repeat:\n{body}<|im_end|>")));
            assert!(e.loss_mask.iter().all(|&m| m == 1) && e.loss_mask.len() == e.response_ids.len());
            assert!(e.is_last && e.index == 0 && e.trajectory_id >= ECHO_TRAJECTORY_BASE);
        }
        let ids: std::collections::BTreeSet<u64> = echoes.iter().map(|e| e.trajectory_id).collect();
        assert_eq!(ids.len(), 20);
        let again = echo_segments(&ByteCodec, &demos, 20, 256, 7).unwrap();
        assert!(echoes.iter().zip(&again).all(|(a, b)| a.prompt_ids == b.prompt_ids && a.response_ids == b.response_ids));
        let other = echo_segments(&ByteCodec, &demos, 20, 256, 8).unwrap();
        assert!(echoes.iter().zip(&other).any(|(a, b)| a.response_ids != b.response_ids));
        assert!(echo_segments(&ByteCodec, &demos, 0, 256, 7).unwrap().is_empty());
        assert!(echo_segments(&ByteCodec, &[demo("<|im_start|>user\nhi<|im_end|>")], 1, 256, 7).unwrap_err().to_string().contains("sft.echo_segments"));
    }

    #[test]
    fn prompt_lines_keep_the_user_message_lines_of_three_words_or_more() {
        let prompt = "<|im_start|>system\nKeep the facts here.<|im_end|>\n<|im_start|>user\nTrack: Vera.\n\nMemory (1/2):\n[m1] Vera pet: cat\n\nChunk 2 of 8:\nVera has a dog.<|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(prompt_lines(prompt), vec!["[m1] Vera pet: cat", "Chunk 2 of 8:", "Vera has a dog."]);
    }
}
