//! Decode throughput of the generation engine on SmolLM2-135M (GGUF), batch 1 and 8, 64 new
//! tokens after ~64-token prompts; the same setup as `scripts/reference/hf_generate_bench.py`.
//! Then a per-operation breakdown of one decode step at each batch size (what limits speed).
//!
//!     cargo run --release -p memrl-policies --example bench_generate -- [--gguf PATH] [--new-tokens 64]
//!
//! Prints one JSON object. Threads: burn-flex uses rayon's global pool (RAYON_NUM_THREADS).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use memrl_policies::{Backend, BurnBackend, Engine, EngineConfig, GenerationRequest, Llama, load_model, load_tokenizer};
use serde_json::json;

const TEXT: &str = "Memory lets an agent keep what matters across a long conversation: names, dates, plans, \
preferences and corrections. A good agent writes short notes, updates them when facts change, \
and deletes the ones that are no longer true, so that later questions can be answered quickly. ";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// Seconds of the fastest of `reps` runs of `f`.
fn time_min(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Times each kind of operation of one decode step at `batch` rows and context `ctx`.
fn op_breakdown(model: &Llama<BurnBackend>, batch: usize, ctx: usize) -> serde_json::Value {
    let b = &model.backend;
    let c = &model.config;
    let layers = c.num_hidden_layers as f64;
    let x = b.tensor(vec![0.1; batch * c.hidden_size], &[batch, 1, c.hidden_size]);
    let l0 = &model.layers[0];
    let reps = 5;
    // Each timing runs the op for every layer's own weights, so weights stream from memory as in
    // a real step (timing one layer repeatedly would measure cache-hot weights).
    let qkv = time_min(reps, || {
        for l in &model.layers {
            for lin in [&l.q_proj, &l.k_proj, &l.v_proj] {
                let _ = b.to_vec(&b.narrow(b.linear(x.clone(), &lin.weight, lin.bias.as_ref()), 2, 0, 1));
            }
        }
    }) / layers;
    let o = time_min(reps, || {
        for l in &model.layers {
            let _ = b.to_vec(&b.narrow(b.linear(x.clone(), &l.o_proj.weight, None), 2, 0, 1));
        }
    }) / layers;
    let xf = b.tensor(vec![0.1; batch * c.intermediate_size], &[batch, 1, c.intermediate_size]);
    let mlp = time_min(reps, || {
        for l in &model.layers {
            let g = b.silu(b.linear(x.clone(), &l.gate_proj.weight, None));
            let u = b.linear(x.clone(), &l.up_proj.weight, None);
            let _ = b.to_vec(&b.narrow(b.mul(g, u), 2, 0, 1));
            let _ = b.to_vec(&b.narrow(b.linear(xf.clone(), &l.down_proj.weight, None), 2, 0, 1));
        }
    }) / layers;
    let norm = time_min(reps, || {
        let _ = b.to_vec(&b.narrow(b.rms_norm(x.clone(), &l0.input_layernorm, 1e-5), 2, 0, 1));
    });
    let (h, hkv, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
    let q = b.tensor(vec![0.1; batch * h * d], &[batch, h, 1, d]);
    let mut cache = model.new_cache(batch, ctx + 1);
    let mask = memrl_policies::AttentionMask { query_start: vec![ctx; batch], key_len: vec![ctx + 1; batch] };
    let kv_new = b.tensor(vec![0.1; batch * hkv * d], &[batch, hkv, 1, d]);
    let attn = time_min(reps, || {
        let slots: Vec<usize> = (0..batch).collect();
        b.kv_write(&mut cache, 0, &slots, &vec![ctx; batch], kv_new.clone(), kv_new.clone());
        let (k, v) = b.kv_read(&cache, 0, 0, batch, ctx + 1);
        let r = b.rope(q.clone(), &b.tensor(vec![1.0; batch * d], &[batch, 1, 1, d]), &b.tensor(vec![0.0; batch * d], &[batch, 1, 1, d]));
        let _ = b.to_vec(&b.narrow(b.attention(r, k, v, &mask), 3, 0, 1));
    });
    let hn = b.tensor(vec![0.1; batch * c.hidden_size], &[batch, 1, c.hidden_size]);
    let head = time_min(reps, || {
        let _ = b.to_vec(&model.lm_head(hn.clone()));
    });
    // The previous formulation, h @ W^T with W^T a transposed view: kept to show why lm_head computes (W @ h^T)^T.
    let wt = b.transpose(model.lm_head.clone(), 0, 1);
    let head_h_at_wt = time_min(reps, || {
        let _ = b.to_vec(&b.linear(hn.clone(), &wt, None));
    });
    // One whole decode step (forward over the cache + lm_head + logits to host), for comparison with the sum.
    let mut step_cache = model.new_cache(batch, ctx + 1);
    let step_ids = vec![100u32; batch];
    let full_step = time_min(reps, || {
        let h = model.forward_cached(&mut step_cache, 0, &step_ids, batch, 1, &vec![ctx; batch]);
        let _ = b.to_vec(&model.lm_head(h));
    });
    let per_layer = qkv + o + mlp + 2.0 * norm + attn;
    json!({
        "batch": batch, "context": ctx,
        "ms_per_step": {
            "qkv_proj": qkv * layers * 1e3, "o_proj": o * layers * 1e3, "mlp": mlp * layers * 1e3,
            "rms_norm": 2.0 * norm * layers * 1e3, "attention_with_cache": attn * layers * 1e3,
            "lm_head_and_logits_copy": head * 1e3,
            "lm_head_as_h_at_w_transposed_view": head_h_at_wt * 1e3,
            "sum": (per_layer * layers + head) * 1e3,
            "measured_full_step": full_step * 1e3,
        }
    })
}

fn main() {
    let gguf = PathBuf::from(arg("--gguf").unwrap_or_else(|| {
        std::env::var("MEMRL_SMOLLM2_GGUF")
            .unwrap_or_else(|_| format!("{}/../.cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", env!("CARGO_MANIFEST_DIR")))
    }));
    let new_tokens: usize = arg("--new-tokens").map(|s| s.parse().expect("--new-tokens N")).unwrap_or(64);
    let prompt_tokens: usize = arg("--prompt-tokens").map(|s| s.parse().expect("--prompt-tokens N")).unwrap_or(64);
    let reps: usize = arg("--repeats").map(|s| s.parse().expect("--repeats N")).unwrap_or(3);
    let t = Instant::now();
    let model = Arc::new(load_model(BurnBackend::flex(), &gguf).expect("loading model"));
    let tok = load_tokenizer(&gguf).expect("loading tokenizer");
    let load_s = t.elapsed().as_secs_f64();
    let base = tok.encode(&TEXT.repeat(4), true).unwrap();
    let mut runs = vec![];
    for batch in [1usize, 8] {
        let prompts: Vec<Vec<u32>> = (0..batch).map(|i| base[i..i + prompt_tokens].to_vec()).collect();
        let cfg = EngineConfig { max_batch: batch, max_seq_len: prompt_tokens + new_tokens + 1 };
        let mut engine = Engine::new(model.clone(), None, cfg).unwrap();
        let reqs = |n: usize| prompts.iter().map(|p| GenerationRequest::greedy(p.clone(), n)).collect::<Vec<_>>();
        engine.generate_batch(reqs(2)).unwrap(); // warm-up
        let prefill = time_min(reps, || {
            engine.generate_batch(reqs(1)).unwrap();
        });
        let total = time_min(reps, || {
            let out = engine.generate_batch(reqs(new_tokens)).unwrap();
            assert!(out.iter().all(|o| o.token_ids.len() == new_tokens));
        });
        runs.push(json!({
            "batch": batch, "prefill_s": prefill, "total_s": total,
            "decode_tokens_per_s": (batch * (new_tokens - 1)) as f64 / (total - prefill),
            "end_to_end_tokens_per_s": (batch * new_tokens) as f64 / total,
        }));
    }
    let breakdown: Vec<_> = [1, 8].iter().map(|&b| op_breakdown(&model, b, prompt_tokens + new_tokens / 2)).collect();
    let out = json!({
        "library": "memrl-policies", "backend": model.backend.name(),
        "threads": rayon::current_num_threads(), "load_s": load_s,
        "new_tokens": new_tokens, "prompt_tokens": prompt_tokens, "runs": runs, "decode_step_breakdown": breakdown,
    });
    println!("{out}");
}
