//! `memrl tokenize`: print the token ids (and token strings) a model's tokenizer gives a text.

use std::path::PathBuf;

use memrl_policies::inspect::{format_tokenize, tokenize};

/// Arguments of `memrl tokenize`.
#[derive(clap::Args, Debug)]
pub struct TokenizeArgs {
    /// Model directory (with tokenizer.json) or a .gguf file.
    #[arg(long)]
    pub model: PathBuf,
    /// The text to tokenize.
    pub text: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `memrl tokenize`.
pub fn run(args: TokenizeArgs) -> anyhow::Result<()> {
    let out = tokenize(&args.model, &args.text)?;
    if args.json {
        outln!("{}", serde_json::to_string(&out)?);
    } else {
        out!("{}", format_tokenize(&out));
    }
    Ok(())
}
