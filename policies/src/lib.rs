//! Tokenizer and chat template, the Llama-family decoder over a small backend seam,
//! weight loading (safetensors, GGUF), batched KV-cache generation and log-probs.
//! Knows tokens and tensors, never environments.
