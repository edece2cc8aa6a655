//! `memrl generate`: load a model (HF directory or .gguf) and generate from a prompt or a chat
//! message, printing prompt ids, generated ids, their log-probs and the text.

use std::path::PathBuf;

use memrl_policies::inspect::{GenerateArgs as Request, PromptInput, format_generate, generate};

/// Arguments of `memrl generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Model directory (config.json + safetensors + tokenizer.json) or a .gguf file.
    #[arg(long)]
    pub model: PathBuf,
    /// Raw prompt text.
    #[arg(long, conflicts_with = "chat", required_unless_present = "chat")]
    pub prompt: Option<String>,
    /// A user message, rendered with the model's chat template.
    #[arg(long)]
    pub chat: Option<String>,
    /// Most tokens to generate (at least 1).
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Top-k sampling (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `memrl generate`.
pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let input = match (args.prompt, args.chat) {
        (Some(p), None) => PromptInput::Text(p),
        (None, Some(c)) => PromptInput::Chat(c),
        _ => anyhow::bail!("give exactly one of --prompt or --chat"),
    };
    let out = generate(&Request {
        model: args.model,
        input,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
    })?;
    if args.json {
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        out!("{}", format_generate(&out));
    }
    Ok(())
}
