//! Byte-level BPE training on caller-supplied text: deterministic bytes, special tokens, round
//! trips, loading as a memrl tokenizer, and a chat template that renders as SmolLM2's.

mod common;
use common::gguf_path;

use memrl_policies::chat::{ChatTemplate, SpecialTokens};
use memrl_policies::train::bpe::SPECIAL_TOKENS;
use memrl_policies::train::{BpeTrainingConfig, CHATML_TEMPLATE, train_bpe_tokenizer};
use memrl_policies::{Tokenizer, load_tokenizer};
use serde_json::{Value, json};

/// Rendered-episode-like text: tool calls, memory ids, numbers, names.
fn corpus() -> Vec<String> {
    let names = ["Alice", "Bob", "Dana", "Ernesto", "Zoë"];
    let cities = ["Rome", "Paris", "Lagos", "Osaka", "Lima"];
    let mut out = Vec::new();
    for i in 0..300 {
        let (n, c) = (names[i % names.len()], cities[(i * 7) % cities.len()]);
        out.push(format!(
            "<|im_start|>user\nFact {i}: {n} moved to {c} on {} May, 2023.<|im_end|>\n<|im_start|>assistant\n\
             <tool_call>{{\"name\": \"memory_add\", \"arguments\": {{\"content\": \"{n} lives in {c}\"}}}}</tool_call><|im_end|>\n",
            1 + i % 28
        ));
        out.push(format!("memory_update(id={}, content='{n} moved to {c}') → ok; search(\"where does {n} live\", k=3)", i % 17));
    }
    out
}

#[test]
fn training_is_deterministic_and_round_trips() {
    let config = BpeTrainingConfig { vocab_size: 400, min_frequency: 2, ..BpeTrainingConfig::default() };
    let a = train_bpe_tokenizer(corpus(), &config).unwrap();
    let b = train_bpe_tokenizer(corpus(), &config).unwrap();
    assert_eq!(a.to_json().unwrap(), b.to_json().unwrap(), "same corpus, same tokenizer.json bytes");
    assert_eq!(a.vocab_size(), 400);
    for text in ["Zoë moved to Osaka. 🌈 ümlaut\ttab\n\nnew  lines", "never seen: qwxz ∑ 漢字", ""] {
        let ids = a.encode(text).unwrap();
        assert_eq!(a.decode(&ids).unwrap(), text);
    }
    // Special tokens are whole tokens with fixed ids, even inside text.
    let ids = a.encode("<|im_start|>user\nhi<|im_end|>").unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(*ids.last().unwrap(), 2);
    // The merges learned the corpus: a typical line takes well under half a token per byte.
    let line = &corpus()[2];
    let n = a.encode(line).unwrap().len();
    assert!(n * 3 < line.len(), "{n} tokens for {} bytes", line.len());
    // A different corpus gives a different tokenizer.
    let c = train_bpe_tokenizer(corpus().into_iter().rev().take(50), &config).unwrap();
    assert_ne!(a.to_json().unwrap(), c.to_json().unwrap());
    assert!(train_bpe_tokenizer(corpus(), &BpeTrainingConfig { vocab_size: 100, min_frequency: 2, ..BpeTrainingConfig::default() }).is_err());
}

#[test]
fn saved_tokenizer_loads_with_special_tokens_and_chat_template() {
    let t = train_bpe_tokenizer(corpus(), &BpeTrainingConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    t.save(dir.path()).unwrap();
    let tok = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(tok.vocab_size(), t.vocab_size());
    assert_eq!(tok.bos, Some((SPECIAL_TOKENS[1].to_string(), 1)));
    assert_eq!(tok.eos, Some((SPECIAL_TOKENS[2].to_string(), 2)));
    assert_eq!(tok.pad, Some((SPECIAL_TOKENS[2].to_string(), 2)));
    assert_eq!(tok.unk, Some((SPECIAL_TOKENS[0].to_string(), 0)));
    let msgs = vec![json!({"role": "user", "content": "Where does Dana live?"})];
    let text = tok.apply_chat_template(&msgs, None, true).unwrap();
    assert!(text.starts_with("<|im_start|>system\n") && text.ends_with("<|im_start|>assistant\n"), "{text}");
    let ids = tok.encode_chat(&msgs, None, true).unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 3);
}

#[test]
fn chatml_template_renders_exactly_as_smollm2s() {
    let smol = load_tokenizer(&gguf_path()).unwrap();
    let theirs = smol.chat_template.as_ref().expect("SmolLM2 ships a chat template");
    let ours = ChatTemplate::new(CHATML_TEMPLATE).unwrap();
    let special = SpecialTokens { bos_token: Some("<|im_start|>".into()), eos_token: Some("<|im_end|>".into()), ..Default::default() };
    let m = |role: &str, content: &str| json!({"role": role, "content": content});
    let conversations: Vec<Vec<Value>> = vec![
        vec![m("user", "Remember that my sister's name is Dana.")],
        vec![m("system", "You manage a memory bank."), m("user", "Add: Bob likes tea.")],
        vec![m("user", "hi"), m("assistant", "<tool_call>{\"name\": \"noop\", \"arguments\": {}}</tool_call>"), m("user", "  spaces \n and lines  ")],
        vec![m("system", ""), m("assistant", "first"), m("tool", "result: 3 items")],
        vec![],
    ];
    for conv in &conversations {
        for generation_prompt in [false, true] {
            let want = theirs.render(conv, None, generation_prompt, &special).unwrap();
            let got = ours.render(conv, None, generation_prompt, &special).unwrap();
            assert_eq!(got, want, "conversation {conv:?}, generation prompt {generation_prompt}");
        }
    }
}

#[test]
fn isolated_spaces_give_a_word_one_spelling_wherever_it_stands() {
    let attached = BpeTrainingConfig { vocab_size: 400, min_frequency: 2, ..BpeTrainingConfig::default() };
    let isolated = BpeTrainingConfig { spaces: memrl_policies::train::bpe::SpaceHandling::Isolated, ..attached.clone() };
    let (a, i) = (train_bpe_tokenizer(corpus(), &attached).unwrap(), train_bpe_tokenizer(corpus(), &isolated).unwrap());
    // The same word after a space and after a quote: two spellings with attached spaces, one with isolated.
    let word = |t: &memrl_policies::train::bpe::TrainedTokenizer, text: &str| t.encode(text).unwrap();
    assert_ne!(word(&a, " Osaka"), word(&a, "\"Osaka")[1..].to_vec());
    let (after_space, after_quote) = (word(&i, " Osaka"), word(&i, "\"Osaka"));
    assert_eq!(after_space.len(), 2, "a space token, then the word: {after_space:?}");
    assert_eq!(after_space[1..], after_quote[1..]);
    for text in ["Zoë moved to Osaka. 🌈 ümlaut\ttab\n\nnew  lines", "{\"content\": \"Bob lives in Lima\"}", "  "] {
        assert_eq!(i.decode(&i.encode(text).unwrap()).unwrap(), text);
    }
    // Saved and loaded back, the pre-tokenizer is the same.
    let dir = tempfile::tempdir().unwrap();
    i.save(dir.path()).unwrap();
    let loaded = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(loaded.encode("\"Osaka", false).unwrap(), after_quote);
}
