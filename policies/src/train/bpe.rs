//! A byte-level BPE tokenizer trained on caller-supplied text (rendered environment episodes),
//! with SmolLM2's special tokens and a ChatML chat template that renders exactly as SmolLM2's.
//!
//! Layout as in GPT-2 / SmolLM2: no normalizer, `ByteLevel` pre-tokenizer (GPT-2 regex, no
//! prefix space) and decoder, all 256 byte symbols in the base alphabet (so any text encodes),
//! and the special tokens `<|endoftext|>` = 0, `<|im_start|>` = 1, `<|im_end|>` = 2 first.
//! Training is deterministic: the same corpus and settings give the same `tokenizer.json` bytes
//! (the `tokenizers` trainer breaks count ties by token-pair ids, and serialises the vocabulary
//! sorted by id).

use std::collections::HashSet;
use std::path::Path;

use serde_json::{Value, json};
use tokenizers::AddedToken;
use tokenizers::SplitDelimiterBehavior;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};

use crate::train::error::{Result, TrainError};

/// The special tokens, in id order.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// The default system prompt SmolLM2's template inserts when the conversation has none.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// A ChatML template with SmolLM2's behaviour: a default system turn
/// ([`DEFAULT_SYSTEM_PROMPT`]) when the first message is not a system message,
/// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, and `<|im_start|>assistant\n` as
/// the generation prompt. Written for memrl; the test suite checks it renders exactly as the
/// template shipped in SmolLM2-135M-Instruct.
pub const CHATML_TEMPLATE: &str = r#"{%- for message in messages -%}
{%- if loop.first and messages[0]['role'] != 'system' -%}
{{- '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' -}}
{%- endif -%}
{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}"#;

/// [`CHATML_TEMPLATE`] as an owned string.
pub fn chatml_template() -> String {
    CHATML_TEMPLATE.to_string()
}

/// Where a space goes when text is cut into words before BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpaceHandling {
    /// GPT-2 / SmolLM2: a space joins the word after it, so `Vera` after a space (` Vera`) and
    /// after a quote (`"Vera`) are different tokens.
    #[default]
    Attached,
    /// Every whitespace character is a token of its own, so a word has one spelling in tokens
    /// wherever it stands: copying it from a sentence into a tool-call argument is an identity
    /// map, which random-init models learn far sooner than a per-word translation.
    Isolated,
}

/// Tokenizer training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BpeTrainingConfig {
    /// Final vocabulary size including the 3 special tokens and the 256 byte symbols.
    pub vocab_size: usize,
    /// A pair must occur at least this often to be merged.
    pub min_frequency: u64,
    /// Where spaces go.
    pub spaces: SpaceHandling,
}

impl Default for BpeTrainingConfig {
    /// 1536 tokens, pairs seen at least twice, spaces attached as in GPT-2.
    fn default() -> Self {
        BpeTrainingConfig { vocab_size: 1536, min_frequency: 2, spaces: SpaceHandling::Attached }
    }
}

/// A trained tokenizer, ready to be written as `tokenizer.json` + `tokenizer_config.json`.
pub struct TrainedTokenizer {
    inner: tokenizers::Tokenizer,
}

/// Trains a byte-level BPE tokenizer on `corpus` (one string per document).
pub fn train_bpe_tokenizer<I, S>(corpus: I, config: &BpeTrainingConfig) -> Result<TrainedTokenizer>
where
    I: IntoIterator<Item = S>,
    I::IntoIter: Send,
    S: AsRef<str> + Send,
{
    let base = SPECIAL_TOKENS.len() + 256;
    if config.vocab_size < base {
        return Err(TrainError::config("BPE tokenizer", format!("vocab_size {} is below the {base} special and byte tokens", config.vocab_size)));
    }
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let specials = SPECIAL_TOKENS.iter().map(|s| AddedToken::from(s.to_string(), true).normalized(false)).collect();
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(config.vocab_size)
        .min_frequency(config.min_frequency)
        .special_tokens(specials)
        .initial_alphabet(alphabet)
        .show_progress(false)
        .build();
    let mut trainer: TrainerWrapper = trainer.into();
    let mut tok = tokenizers::Tokenizer::new(BPE::default());
    // SmolLM2's: add_prefix_space = false, trim_offsets = true, use_regex = true.
    let byte_level = ByteLevel::new(false, true, true);
    match config.spaces {
        SpaceHandling::Attached => {
            tok.with_pre_tokenizer(Some(byte_level));
        }
        SpaceHandling::Isolated => {
            let isolate = Split::new(SplitPattern::Regex(r"\s".into()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| TrainError::Tokenizer(format!("space splitter: {e}")))?;
            tok.with_pre_tokenizer(Some(Sequence::new(vec![isolate.into(), byte_level.into()])));
        }
    }
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    tok.train(&mut trainer, corpus.into_iter()).map_err(|e| TrainError::Tokenizer(e.to_string()))?;
    for (i, s) in SPECIAL_TOKENS.iter().enumerate() {
        if tok.token_to_id(s) != Some(i as u32) {
            return Err(TrainError::Tokenizer(format!("special token {s} did not get id {i}")));
        }
    }
    Ok(TrainedTokenizer { inner: tok })
}

impl TrainedTokenizer {
    /// Vocabulary size including special tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The `tokenizer.json` text (compact, deterministic).
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(false).map_err(|e| TrainError::Tokenizer(format!("serialising: {e}")))
    }

    /// Encodes text (no special tokens added; special-token text is matched whole).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| TrainError::Tokenizer(format!("encode: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids back to text.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(|e| TrainError::Tokenizer(format!("decode: {e}")))
    }

    /// The `tokenizer_config.json` value: special tokens as SmolLM2-Instruct declares them
    /// (BOS `<|im_start|>`, EOS and PAD `<|im_end|>`, UNK `<|endoftext|>`) and the chat template.
    pub fn tokenizer_config(&self) -> Value {
        tokenizer_config_json(&chatml_template())
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (atomically each).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::train::checkpoint::TokenizerFiles::from_trained(self)?.write(dir)
    }
}

/// A `tokenizer_config.json` for the special tokens of [`SPECIAL_TOKENS`] and `chat_template`.
pub fn tokenizer_config_json(chat_template: &str) -> Value {
    let added: serde_json::Map<String, Value> = SPECIAL_TOKENS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let entry = json!({"content": s, "lstrip": false, "normalized": false, "rstrip": false, "single_word": false, "special": true});
            (i.to_string(), entry)
        })
        .collect();
    json!({
        "add_bos_token": false,
        "add_eos_token": false,
        "add_prefix_space": false,
        "added_tokens_decoder": added,
        "additional_special_tokens": [SPECIAL_TOKENS[1], SPECIAL_TOKENS[2]],
        "bos_token": SPECIAL_TOKENS[1],
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": false,
        "eos_token": SPECIAL_TOKENS[2],
        "model_max_length": 4096,
        "pad_token": SPECIAL_TOKENS[2],
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": SPECIAL_TOKENS[0],
    })
}
