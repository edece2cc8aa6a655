//! Tokenizer: HF `tokenizers` loaded from `tokenizer.json`, or built from GGUF metadata
//! (byte-level BPE: `tokenizer.ggml.model = "gpt2"`), plus the model's chat template.
//!
//! The GGUF construction follows transformers' `integrations/gguf/gguf_tokenizer_mapping.py`
//! (the reference our fixtures come from): BPE over the file's vocabulary and merges with a
//! GPT-2 `ByteLevel` pre-tokenizer, or a `Split` regex + `ByteLevel` for the pre-tokenizer names
//! transformers maps (llama3, qwen2, gpt-4o families); control tokens (type 3) are added as
//! special tokens and user-defined ones (type 4) as plain added tokens.

use std::path::Path;

use serde_json::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior};

use crate::chat::ChatTemplate;
use crate::error::{PolicyError, Result};
use crate::gguf::GgufFile;

/// A tokenizer with its special tokens and chat template.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: String,
    /// Beginning-of-sequence token (text, id), if the model has one.
    pub bos: Option<(String, u32)>,
    /// End-of-sequence token (text, id), if the model has one.
    pub eos: Option<(String, u32)>,
    /// Padding token (text, id), if the model has one.
    pub pad: Option<(String, u32)>,
    /// Unknown token (text, id), if the model has one.
    pub unk: Option<(String, u32)>,
    /// The chat template, if the model ships one that compiles.
    pub chat_template: Option<ChatTemplate>,
    /// Where `chat_template` came from (named in render errors) or, when it is None, why (the
    /// file it was looked for in, or its compile error). Tokenizing never needs the template.
    template_note: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("origin", &self.origin).field("vocab_size", &self.vocab_size()).finish()
    }
}

/// The GPT-2 byte → printable-character table (`bytes_to_unicode` in GPT-2/transformers).
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).expect("latin-1")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("valid code point")
        };
    }
    table
}

/// transformers' split regexes by GGUF `tokenizer.ggml.pre` (others use GPT-2's ByteLevel regex).
fn split_regex(pre: &str) -> Option<&'static str> {
    const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2" | "dbrx" | "smaug-bpe" => Some(LLAMA3),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "megrez" => Some(QWEN2),
        "gpt-4o" | "llama4" | "kanana2" | "minimax-m2" => Some(GPT4O),
        _ => None,
    }
}

impl Tokenizer {
    /// Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json` (special
    /// tokens, chat template).
    pub fn from_hf_dir(dir: &Path) -> Result<Tokenizer> {
        let path = dir.join("tokenizer.json");
        let origin = path.display().to_string();
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| PolicyError::Tokenizer { origin: origin.clone(), message: e.to_string() })?;
        let cfg_path = dir.join("tokenizer_config.json");
        let jinja_path = dir.join("chat_template.jinja");
        let template_note = format!("{} has no tokenizer_config.json (nor chat_template.jinja) to take a chat template from", dir.display());
        let mut tok = Tokenizer { inner, origin, bos: None, eos: None, pad: None, unk: None, chat_template: None, template_note };
        if cfg_path.is_file() {
            let text = std::fs::read_to_string(&cfg_path).map_err(|e| PolicyError::io(&cfg_path, e))?;
            let cfg: Value = serde_json::from_str(&text).map_err(|e| PolicyError::Json { path: cfg_path.clone(), source: e })?;
            let special = |key: &str| -> Option<(String, u32)> {
                let text = match cfg.get(key)? {
                    Value::String(s) => s.clone(),
                    Value::Object(o) => o.get("content")?.as_str()?.to_string(),
                    _ => return None,
                };
                let id = tok.inner.token_to_id(&text)?;
                Some((text, id))
            };
            let (bos, eos, pad, unk) = (special("bos_token"), special("eos_token"), special("pad_token"), special("unk_token"));
            tok.bos = bos;
            tok.eos = eos;
            tok.pad = pad;
            tok.unk = unk;
            let template = match cfg.get("chat_template") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                // A list of named templates: use "default".
                Some(Value::Array(items)) => items
                    .iter()
                    .find(|i| i.get("name").and_then(Value::as_str) == Some("default"))
                    .and_then(|i| i.get("template").and_then(Value::as_str))
                    .map(str::to_string),
                Some(_) => {
                    return Err(PolicyError::Tokenizer {
                        origin: cfg_path.display().to_string(),
                        message: "`chat_template` must be a string or a list of {name, template}".into(),
                    });
                }
            };
            // Newer HF repos keep the template in a separate chat_template.jinja.
            let template = match template {
                Some(t) => Some((t, format!("{}: `chat_template`", cfg_path.display()))),
                None => std::fs::read_to_string(&jinja_path).ok().map(|t| (t, jinja_path.display().to_string())),
            };
            tok.template_note = format!("{} has no `chat_template` (and there is no {})", cfg_path.display(), jinja_path.display());
            if let Some((text, source)) = template {
                tok.set_chat_template(&text, &source);
            }
        }
        Ok(tok)
    }

    /// Builds the tokenizer from GGUF metadata (`tokenizer.ggml.*`).
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let origin = file.path().display().to_string();
        let err = |m: String| PolicyError::Tokenizer { origin: origin.clone(), message: m };
        let model = file.get("tokenizer.ggml.model").and_then(|v| v.as_str()).unwrap_or("");
        if model != "gpt2" {
            return Err(err(format!("tokenizer.ggml.model = `{model}` is not supported; only byte-level BPE (`gpt2`) GGUF tokenizers are built")));
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            let arr = file.get(key).and_then(|v| v.as_array()).ok_or_else(|| err(format!("`{key}` is missing or not an array")))?;
            arr.iter().enumerate().map(|(i, v)| v.as_str().map(str::to_string).ok_or_else(|| err(format!("`{key}`[{i}] is not a string")))).collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges_raw = strings("tokenizer.ggml.merges")?;
        let types: Vec<u64> = match file.get("tokenizer.ggml.token_type").and_then(|v| v.as_array()) {
            Some(arr) => arr.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
            None => vec![1; tokens.len()],
        };
        // Tokens are stored in the byte alphabet already; respell any that are not (as transformers does).
        let table = bytes_to_unicode();
        let alphabet: std::collections::HashSet<char> = table.iter().copied().collect();
        let mut vocab = Vocab::new();
        for (i, t) in tokens.iter().enumerate() {
            let spelled = if t.chars().all(|c| alphabet.contains(&c)) { t.clone() } else { t.bytes().map(|b| table[b as usize]).collect() };
            vocab.insert(spelled, i as u32);
        }
        let mut merges = Vec::with_capacity(merges_raw.len());
        for (i, m) in merges_raw.iter().enumerate() {
            let mut parts = m.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(a), Some(b), None) => merges.push((a.to_string(), b.to_string())),
                _ => return Err(err(format!("`tokenizer.ggml.merges`[{i}] = {m:?} is not two space-separated pieces"))),
            }
        }
        let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| err(format!("building BPE: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let pre = file.get("tokenizer.ggml.pre").and_then(|v| v.as_str()).unwrap_or("default");
        let pre_tokenizer: PreTokenizerWrapper = match split_regex(pre) {
            Some(regex) => {
                let split = Split::new(SplitPattern::Regex(regex.to_string()), SplitDelimiterBehavior::Isolated, false)
                    .map_err(|e| err(format!("split regex for `{pre}`: {e}")))?;
                Sequence::new(vec![split.into(), ByteLevel::new(false, true, false).into()]).into()
            }
            None => ByteLevel::new(false, true, true).into(),
        };
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let control: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(t, ty)| **ty == 3 && t.chars().all(|c| alphabet.contains(&c)))
            .map(|(t, _)| AddedToken::from(t.clone(), true).normalized(false))
            .collect();
        inner.add_special_tokens(control).map_err(|e| err(format!("adding control tokens: {e}")))?;
        let user: Vec<AddedToken> =
            tokens.iter().zip(&types).filter(|(_, ty)| **ty == 4).map(|(t, _)| AddedToken::from(t.clone(), false).normalized(false)).collect();
        inner.add_tokens(user).map_err(|e| err(format!("adding user-defined tokens: {e}")))?;
        // A special-token id outside the vocabulary is an error, not a token silently dropped.
        let special = |key: &str| -> Result<Option<(String, u32)>> {
            let Some(value) = file.get(key) else { return Ok(None) };
            let found = value.as_u64().and_then(|id| Some((tokens.get(usize::try_from(id).ok()?)?.clone(), u32::try_from(id).ok()?)));
            match found {
                Some(token) => Ok(Some(token)),
                None => Err(err(format!("`{key}` = {value:?} is not a token id of the {}-token vocabulary", tokens.len()))),
            }
        };
        let template_note = format!("{origin} has no `tokenizer.chat_template`");
        let mut tok = Tokenizer {
            bos: special("tokenizer.ggml.bos_token_id")?,
            eos: special("tokenizer.ggml.eos_token_id")?,
            pad: special("tokenizer.ggml.padding_token_id")?,
            unk: special("tokenizer.ggml.unknown_token_id")?,
            inner,
            chat_template: None,
            template_note,
            origin,
        };
        if let Some(t) = crate::gguf::llama::chat_template(file) {
            let source = format!("{}: `tokenizer.chat_template`", tok.origin);
            tok.set_chat_template(&t, &source);
        }
        Ok(tok)
    }

    /// Compiles `text` (from `source`, named in errors) as the chat template. A template that
    /// does not compile is an error only where a chat is rendered, so `memrl tokenize` and
    /// other template-free uses still work.
    fn set_chat_template(&mut self, text: &str, source: &str) {
        match ChatTemplate::new(text) {
            Ok(t) => {
                self.chat_template = Some(t);
                self.template_note = source.to_string();
            }
            Err(e) => {
                self.chat_template = None;
                self.template_note = format!("{source}: {}", e.to_string().trim_start_matches("chat template: "));
            }
        }
    }

    /// Encodes text. `add_special_tokens` applies the tokenizer's post-processor (e.g. a BOS),
    /// as `tokenizer(text, add_special_tokens=...)` in transformers. Special-token text such as
    /// `<|im_start|>` is always matched whole.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc =
            self.inner.encode(text, add_special_tokens).map_err(|e| PolicyError::Tokenizer { origin: self.origin.clone(), message: format!("encode: {e}") })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids to text (byte-level pieces joined, invalid UTF-8 replaced by U+FFFD).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(ids, skip_special_tokens).map_err(|e| PolicyError::Tokenizer { origin: self.origin.clone(), message: format!("decode: {e}") })
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token string (including special tokens).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The string of a token id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Renders `messages` with the model's chat template (see [`ChatTemplate::render`]),
    /// passing this tokenizer's special tokens as `bos_token`, `eos_token`, ...
    pub fn apply_chat_template(&self, messages: &[Value], tools: Option<&[Value]>, add_generation_prompt: bool) -> Result<String> {
        let template = self.chat_template.as_ref().ok_or_else(|| PolicyError::ChatTemplate(self.template_note.clone()))?;
        let special = |t: &Option<(String, u32)>| t.as_ref().map(|(s, _)| s.clone());
        let tokens = crate::chat::SpecialTokens {
            bos_token: special(&self.bos),
            eos_token: special(&self.eos),
            pad_token: special(&self.pad),
            unk_token: special(&self.unk),
        };
        template.render(messages, tools, add_generation_prompt, &tokens).map_err(|e| match e {
            PolicyError::ChatTemplate(m) => PolicyError::ChatTemplate(format!("{}: {m}", self.template_note)),
            other => other,
        })
    }

    /// Renders and tokenizes a conversation the way transformers' `apply_chat_template(tokenize=True)`
    /// does: the rendered text is encoded without adding special tokens.
    pub fn encode_chat(&self, messages: &[Value], tools: Option<&[Value]>, add_generation_prompt: bool) -> Result<Vec<u32>> {
        let text = self.apply_chat_template(messages, tools, add_generation_prompt)?;
        self.encode(&text, false)
    }

    /// Where this tokenizer was loaded from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The HF `tokenizer.json` text of this tokenizer (e.g. to write a checkpoint of a model
    /// whose tokenizer was built from GGUF metadata).
    pub fn to_hf_json(&self) -> Result<String> {
        self.inner.to_string(false).map_err(|e| PolicyError::Tokenizer { origin: self.origin.clone(), message: format!("serialising: {e}") })
    }

    /// The HF `tokenizer_config.json` of this tokenizer: its special tokens and chat template.
    pub fn tokenizer_config_json(&self) -> serde_json::Value {
        let mut cfg = serde_json::Map::new();
        for (key, token) in [("bos_token", &self.bos), ("eos_token", &self.eos), ("pad_token", &self.pad), ("unk_token", &self.unk)] {
            if let Some((text, _)) = token {
                cfg.insert(key.into(), serde_json::Value::String(text.clone()));
            }
        }
        if let Some(t) = &self.chat_template {
            cfg.insert("chat_template".into(), serde_json::Value::String(t.source().to_string()));
        }
        serde_json::Value::Object(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-token tokenizer.json, and a tokenizer_config.json with `chat_template` when given.
    fn hf_dir(template: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let tok = serde_json::json!({
            "version": "1.0", "added_tokens": [], "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "vocab": {"h": 0, "i": 1}, "merges": []}
        });
        std::fs::write(dir.path().join("tokenizer.json"), tok.to_string()).unwrap();
        if let Some(t) = template {
            std::fs::write(dir.path().join("tokenizer_config.json"), serde_json::json!({"chat_template": t}).to_string()).unwrap();
        }
        dir
    }

    #[test]
    fn a_missing_or_broken_chat_template_blames_its_file_and_spares_tokenizing() {
        let msgs = [serde_json::json!({"role": "user", "content": "hi"})];
        let missing = hf_dir(None);
        let tok = Tokenizer::from_hf_dir(missing.path()).unwrap();
        let e = tok.apply_chat_template(&msgs, None, true).unwrap_err().to_string();
        assert!(e.contains("no tokenizer_config.json") && !e.contains("tokenizer.json "), "{e}");

        let broken = hf_dir(Some("{% for m in messages %}{{ m.content }"));
        let tok = Tokenizer::from_hf_dir(broken.path()).expect("a broken template does not stop the tokenizer");
        assert_eq!(tok.encode("hi", false).unwrap(), vec![0, 1]);
        let e = tok.apply_chat_template(&msgs, None, true).unwrap_err().to_string();
        let cfg = broken.path().join("tokenizer_config.json").display().to_string();
        assert!(e.contains(&cfg) && e.contains("does not compile") && e.lines().count() == 1, "{e}");

        let raises = hf_dir(Some("{{ raise_exception('no system role') }}"));
        let e = Tokenizer::from_hf_dir(raises.path()).unwrap().apply_chat_template(&msgs, None, true).unwrap_err().to_string();
        assert!(e.contains("tokenizer_config.json: `chat_template`") && e.contains("no system role"), "{e}");
    }

    #[test]
    fn byte_table_matches_gpt2() {
        let t = bytes_to_unicode();
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        let distinct: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }
}
