//! Checks every seam operation of each backend against plain host loops: the checks are generic
//! functions, instantiated per backend at the bottom (burn always; tch with the `tch` feature).

use super::burn_flex::BurnBackend;
use super::{AttentionMask, Backend};

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "index {i}: {x} vs {y}");
    }
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 20000) as f32 / 10000.0 - 1.0
        })
        .collect()
}

fn shapes_reshape_transpose_narrow_cat<B: Backend>(b: B) {
    let t = b.tensor((0..6).map(|x| x as f32).collect(), &[2, 3]);
    assert_eq!(b.shape(&t), vec![2, 3]);
    let tt = b.transpose(t.clone(), 0, 1);
    assert_eq!(b.shape(&tt), vec![3, 2]);
    assert_eq!(b.to_vec(&tt), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(b.to_vec(&b.narrow(t.clone(), 1, 1, 2)), vec![1.0, 2.0, 4.0, 5.0]);
    let c = b.cat(vec![t.clone(), t.clone()], 0);
    assert_eq!(b.shape(&c), vec![4, 3]);
    let r = b.reshape(t, &[3, 2]);
    assert_eq!(b.to_vec(&r), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}

fn elementwise_broadcast_and_reductions<B: Backend>(b: B) {
    let x = b.tensor(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let row = b.tensor(vec![10.0, 20.0], &[2]);
    assert_eq!(b.to_vec(&b.add(x.clone(), row.clone())), vec![11.0, 22.0, 13.0, 24.0]);
    assert_eq!(b.to_vec(&b.mul(x.clone(), row)), vec![10.0, 40.0, 30.0, 80.0]);
    assert_eq!(b.to_vec(&b.sum_dim(x.clone(), 1)), vec![3.0, 7.0]);
    assert_eq!(b.shape(&b.sum_dim(x.clone(), 1)), vec![2, 1]);
    assert_eq!(b.to_vec(&b.mean_dim(x.clone(), 0)), vec![2.0, 3.0]);
    assert_eq!(b.to_vec(&b.max_dim(x.clone(), 1)), vec![2.0, 4.0]);
    assert_eq!(b.to_vec(&b.sum_all(x.clone())), vec![10.0]);
    assert_eq!(b.to_vec(&b.clamp(x.clone(), 1.5, 3.5)), vec![1.5, 2.0, 3.0, 3.5]);
    assert_eq!(b.to_vec(&b.minimum(x.clone(), b.tensor(vec![2.5], &[1]))), vec![1.0, 2.0, 2.5, 2.5]);
    let silu: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|v| v / (1.0 + (-v).exp())).collect();
    close(&b.to_vec(&b.silu(x.clone())), &silu, 1e-6);
    close(&b.to_vec(&b.log(b.exp(x.clone()))), &[1.0, 2.0, 3.0, 4.0], 1e-6);
}

fn linear_matmul_embedding_gather<B: Backend>(b: B) {
    // x [2, 1, 3] @ w [3, 2] + bias
    let x = b.tensor(vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0], &[2, 1, 3]);
    let w = b.tensor(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2]);
    let bias = b.tensor(vec![0.5, -0.5], &[2]);
    let y = b.linear(x.clone(), &w, Some(&bias));
    assert_eq!(b.shape(&y), vec![2, 1, 2]);
    assert_eq!(b.to_vec(&y), vec![4.5, 4.5, 0.5, 0.5]);
    let m = b.matmul(b.reshape(x, &[2, 3]), w);
    assert_eq!(b.to_vec(&m), vec![4.0, 5.0, 0.0, 1.0]);
    let table = b.tensor((0..8).map(|v| v as f32).collect(), &[4, 2]);
    let e = b.embedding(&table, &[3, 0, 1], 1, 3);
    assert_eq!(b.shape(&e), vec![1, 3, 2]);
    assert_eq!(b.to_vec(&e), vec![6.0, 7.0, 0.0, 1.0, 2.0, 3.0]);
    let g = b.gather_last(b.tensor(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6], &[2, 3]), &[2, 0]);
    assert_eq!(b.shape(&g), vec![2, 1]);
    close(&b.to_vec(&g), &[0.3, 0.4], 1e-7);
}

fn softmax_log_softmax_rms_norm<B: Backend>(b: B) {
    let v = vec![1.0f32, 2.0, 3.0, 0.5, 0.5, 0.5];
    let x = b.tensor(v.clone(), &[2, 3]);
    let mut want = vec![];
    for r in 0..2 {
        let row = &v[r * 3..r * 3 + 3];
        let z: f32 = row.iter().map(|a| a.exp()).sum();
        want.extend(row.iter().map(|a| a.exp() / z));
    }
    close(&b.to_vec(&b.softmax(x.clone(), 1)), &want, 1e-6);
    let logw: Vec<f32> = want.iter().map(|p| p.ln()).collect();
    close(&b.to_vec(&b.log_softmax(x.clone(), 1)), &logw, 1e-6);
    let w = b.tensor(vec![1.0, 2.0, 0.5], &[3]);
    let mut want = vec![];
    for r in 0..2 {
        let row = &v[r * 3..r * 3 + 3];
        let ms: f32 = row.iter().map(|a| a * a).sum::<f32>() / 3.0;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        want.extend(row.iter().zip([1.0, 2.0, 0.5]).map(|(a, g)| a * inv * g));
    }
    close(&b.to_vec(&b.rms_norm(x, &w, 1e-5)), &want, 1e-6);
}

fn rope_rotates_halves<B: Backend>(b: B) {
    let (d, s) = (4, 2);
    let x = values(d * s, 1);
    let cos = values(d * s, 2);
    let sin = values(d * s, 3);
    let out = b.to_vec(&b.rope(b.tensor(x.clone(), &[1, 1, s, d]), &b.tensor(cos.clone(), &[1, 1, s, d]), &b.tensor(sin.clone(), &[1, 1, s, d])));
    let mut want = vec![];
    for p in 0..s {
        let r = &x[p * d..p * d + d];
        let rot = [-r[2], -r[3], r[0], r[1]];
        for i in 0..d {
            want.push(r[i] * cos[p * d + i] + rot[i] * sin[p * d + i]);
        }
    }
    close(&out, &want, 1e-6);
}

/// Host attention with grouped heads and the [`AttentionMask`] rule.
fn attention_ref(q: &[f32], k: &[f32], v: &[f32], dims: (usize, usize, usize, usize, usize), mask: &AttentionMask) -> Vec<f32> {
    attention_ref_biased(q, k, v, dims, mask, None)
}

/// [`attention_ref`] with an optional additive score bias `[B, H, S, L]`.
fn attention_ref_biased(q: &[f32], k: &[f32], v: &[f32], dims: (usize, usize, usize, usize, usize), mask: &AttentionMask, bias: Option<&[f32]>) -> Vec<f32> {
    let (bsz, h, hkv, s, l) = dims;
    let d = q.len() / (bsz * h * s);
    let g = h / hkv;
    let mut out = vec![0.0; q.len()];
    for b in 0..bsz {
        for hh in 0..h {
            let kv = hh / g;
            for i in 0..s {
                let qi = &q[((b * h + hh) * s + i) * d..][..d];
                let mut scores = vec![f32::NEG_INFINITY; l];
                for (j, sc) in scores.iter_mut().enumerate() {
                    if j <= mask.query_start[b] + i && j < mask.key_len[b] {
                        let kj = &k[((b * hkv + kv) * l + j) * d..][..d];
                        *sc = qi.iter().zip(kj).map(|(a, c)| a * c).sum::<f32>() / (d as f32).sqrt();
                        if let Some(bias) = bias {
                            *sc += bias[((b * h + hh) * s + i) * l + j];
                        }
                    }
                }
                let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let z: f32 = scores.iter().map(|x| (x - m).exp()).sum();
                for (j, sc) in scores.iter().enumerate() {
                    let p = (sc - m).exp() / z;
                    let vj = &v[((b * hkv + kv) * l + j) * d..][..d];
                    for t in 0..d {
                        out[((b * h + hh) * s + i) * d + t] += p * vj[t];
                    }
                }
            }
        }
    }
    out
}

fn grouped_query_attention_with_masks_matches_reference<B: Backend>(b: B) {
    let (bsz, d) = (2, 8);
    let cases = [
        // Prefill: causal with a padded second row, and plain causal (no padding).
        (5, 5, AttentionMask { query_start: vec![0, 0], key_len: vec![5, 3] }),
        (5, 5, AttentionMask { query_start: vec![0, 0], key_len: vec![5, 5] }),
        // Decode: one query at an offset (padded row), and full rows (nothing masked).
        (1, 6, AttentionMask { query_start: vec![5, 2], key_len: vec![6, 3] }),
        (1, 6, AttentionMask { query_start: vec![5, 5], key_len: vec![6, 6] }),
        // A chunk of queries after a cached prefix.
        (3, 6, AttentionMask { query_start: vec![3, 1], key_len: vec![6, 4] }),
    ];
    // Grouped (4 query heads over 2 key/value heads) and plain multi-head attention.
    for (h, hkv) in [(4, 2), (2, 2)] {
        for (s, l, mask) in &cases {
            let (s, l) = (*s, *l);
            let q = values(bsz * h * s * d, 7);
            let k = values(bsz * hkv * l * d, 8);
            let v = values(bsz * hkv * l * d, 9);
            let out = b.attention(b.tensor(q.clone(), &[bsz, h, s, d]), b.tensor(k.clone(), &[bsz, hkv, l, d]), b.tensor(v.clone(), &[bsz, hkv, l, d]), mask);
            assert_eq!(b.shape(&out), vec![bsz, h, s, d]);
            close(&b.to_vec(&out), &attention_ref(&q, &k, &v, (bsz, h, hkv, s, l), mask), 1e-5);
        }
    }
}

fn biased_attention_matches_reference<B: Backend>(b: B) {
    let (bsz, d) = (2, 4);
    let cases =
        [(4, 4, AttentionMask { query_start: vec![0, 0], key_len: vec![4, 3] }), (2, 5, AttentionMask { query_start: vec![3, 1], key_len: vec![5, 3] })];
    for (h, hkv) in [(4, 2), (2, 2)] {
        for (s, l, mask) in &cases {
            let (s, l) = (*s, *l);
            let q = values(bsz * h * s * d, 17);
            let k = values(bsz * hkv * l * d, 18);
            let v = values(bsz * hkv * l * d, 19);
            let bias: Vec<f32> = values(bsz * h * s * l, 20).iter().map(|x| 3.0 * x).collect();
            let t = |data: &Vec<f32>, shape: &[usize]| b.tensor(data.clone(), shape);
            let out = b.attention_biased(t(&q, &[bsz, h, s, d]), t(&k, &[bsz, hkv, l, d]), t(&v, &[bsz, hkv, l, d]), mask, t(&bias, &[bsz, h, s, l]));
            assert_eq!(b.shape(&out), vec![bsz, h, s, d]);
            close(&b.to_vec(&out), &attention_ref_biased(&q, &k, &v, (bsz, h, hkv, s, l), mask, Some(&bias)), 1e-5);
            // A zero bias is plain attention.
            let plain = b.attention_biased(
                t(&q, &[bsz, h, s, d]),
                t(&k, &[bsz, hkv, l, d]),
                t(&v, &[bsz, hkv, l, d]),
                mask,
                b.tensor(vec![0.0; bsz * h * s * l], &[bsz, h, s, l]),
            );
            close(&b.to_vec(&plain), &attention_ref(&q, &k, &v, (bsz, h, hkv, s, l), mask), 1e-5);
        }
    }
}

fn gradients_flow_into_an_attention_bias<B: Backend>(b: B) {
    let (h, s, d) = (2, 3, 4);
    let q = b.tensor(values(h * s * d, 1), &[1, h, s, d]);
    let k = b.tensor(values(h * s * d, 2), &[1, h, s, d]);
    let v = b.tensor(values(h * s * d, 3), &[1, h, s, d]);
    let beta = b.param(vec![0.5, -0.5], &[1, h, 1, 1]);
    let same = b.tensor(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0], &[1, 1, s, s]);
    let mask = AttentionMask { query_start: vec![0], key_len: vec![s] };
    let out = b.attention_biased(q, k, v, &mask, b.mul(same, beta.clone()));
    let grads = b.backward(&b.sum_all(b.mul(out.clone(), out)));
    let g = b.to_vec(&b.grad(&grads, &beta).expect("the bias's parameter gets a gradient"));
    assert!(g.iter().all(|x| x.is_finite() && x.abs() > 1e-7), "bias gradient {g:?}");
}

fn kv_cache_write_read_move<B: Backend>(b: B) {
    let mut cache = b.kv_cache(2, 3, 1, 4, 2);
    // Slot 0 gets two positions, slot 2 one position at offset 1.
    b.kv_write(&mut cache, 1, &[0], &[0], b.tensor(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]), b.tensor(vec![5.0; 4], &[1, 1, 2, 2]));
    b.kv_write(&mut cache, 1, &[2], &[1], b.tensor(vec![9.0, 8.0], &[1, 1, 1, 2]), b.tensor(vec![7.0, 6.0], &[1, 1, 1, 2]));
    let (k, v) = b.kv_read(&cache, 1, 0, 3, 2);
    assert_eq!(b.shape(&k), vec![3, 1, 2, 2]);
    assert_eq!(b.to_vec(&k), vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 8.0]);
    assert_eq!(b.to_vec(&v)[8..], [0.0, 0.0, 7.0, 6.0]);
    // Layer 0 untouched.
    assert!(b.to_vec(&b.kv_read(&cache, 0, 0, 3, 4).0).iter().all(|&x| x == 0.0));
    b.kv_move(&mut cache, 2, 0, 2);
    assert_eq!(b.to_vec(&b.kv_read(&cache, 1, 0, 1, 2).0), vec![0.0, 0.0, 9.0, 8.0]);
    assert_eq!(b.to_vec(&b.kv_read(&cache, 1, 0, 1, 2).1), vec![0.0, 0.0, 7.0, 6.0]);
}

fn autodiff_gradients_match_analytic_values<B: Backend>(b: B) {
    // loss = sum(x * x * w): dloss/dx = 2 x w, dloss/dw = x².
    let x = b.param(vec![1.0, -2.0, 3.0], &[3]);
    let w = b.param(vec![0.5, 1.0, 2.0], &[3]);
    let loss = b.sum_all(b.mul(b.mul(x.clone(), x.clone()), w.clone()));
    let grads = b.backward(&loss);
    close(&b.to_vec(&b.grad(&grads, &x).unwrap()), &[1.0, -4.0, 12.0], 1e-6);
    close(&b.to_vec(&b.grad(&grads, &w).unwrap()), &[1.0, 4.0, 9.0], 1e-6);
}

fn gradients_flow_through_attention_norm_and_log_softmax<B: Backend>(b: B) {
    let (h, s, d) = (2, 3, 4);
    let q = b.param(values(h * s * d, 1), &[1, h, s, d]);
    let k = b.param(values(h * s * d, 2), &[1, h, s, d]);
    let v = b.param(values(h * s * d, 3), &[1, h, s, d]);
    let g = b.param(vec![1.0; d], &[d]);
    let mask = AttentionMask { query_start: vec![0], key_len: vec![s] };
    let a = b.attention(q.clone(), k.clone(), v.clone(), &mask);
    let n = b.rms_norm(a, &g, 1e-6);
    let lp = b.log_softmax(n, 3);
    let picked = b.gather_last(lp, &vec![1; h * s]);
    let loss = b.mul_scalar(b.sum_all(picked), -1.0);
    let grads = b.backward(&loss);
    for (name, p) in [("q", &q), ("k", &k), ("v", &v), ("norm", &g)] {
        let gv = b.to_vec(&b.grad(&grads, p).unwrap_or_else(|| panic!("{name} got no gradient")));
        assert!(gv.iter().any(|x| x.abs() > 1e-7), "{name} gradient is all zero");
        assert!(gv.iter().all(|x| x.is_finite()), "{name} gradient not finite");
    }
}

/// One AdamW update on the backend equals [`crate::backend::adamw::adamw_kernel`] on the host,
/// from zero moments (first step) and from given moments (a later step).
fn adamw_update_matches_host_kernel<B: Backend>(b: B) {
    use crate::backend::adamw::{AdamWScalars, adamw_kernel};
    use crate::train::optim::AdamWConfig;
    let n = 37;
    let (p0, g) = (values(n, 11), values(n, 12));
    let config = AdamWConfig::default();
    let first = AdamWScalars::new(&config, 1e-2, 1, true, 0.5);
    let (p1, m1, v1) = b.adamw_update(b.param(p0.clone(), &[n]), b.tensor(g.clone(), &[n]), None, None, &first);
    let (mut hp, mut hm, mut hv) = (p0, vec![0.0; n], vec![0.0; n]);
    adamw_kernel(&mut hp, &g, &mut hm, &mut hv, &first);
    close(&b.to_vec(&p1), &hp, 1e-6);
    close(&b.to_vec(&m1), &hm, 1e-6);
    close(&b.to_vec(&v1), &hv, 1e-6);
    let second = AdamWScalars::new(&config, 1e-2, 2, true, 1.0);
    let (p2, m2, v2) = b.adamw_update(p1, b.tensor(g.clone(), &[n]), Some(m1), Some(v1), &second);
    adamw_kernel(&mut hp, &g, &mut hm, &mut hv, &second);
    close(&b.to_vec(&p2), &hp, 1e-6);
    close(&b.to_vec(&m2), &hm, 1e-6);
    close(&b.to_vec(&v2), &hv, 1e-6);
}

/// Each backward pass yields that pass's gradients only (libtorch accumulates into `.grad`
/// underneath; the seam must not), and reading a gradient twice gives the same values.
fn backward_passes_do_not_accumulate<B: Backend>(b: B) {
    let x = b.param(vec![1.0, -2.0, 3.0], &[3]);
    let first = b.backward(&b.sum_all(b.mul(x.clone(), x.clone())));
    let g1 = b.to_vec(&b.grad(&first, &x).unwrap());
    close(&g1, &[2.0, -4.0, 6.0], 1e-6);
    close(&b.to_vec(&b.grad(&first, &x).unwrap()), &g1, 0.0);
    let second = b.backward(&b.sum_all(b.mul_scalar(x.clone(), 3.0)));
    close(&b.to_vec(&b.grad(&second, &x).unwrap()), &[3.0, 3.0, 3.0], 1e-6);
    // The first pass's gradients are unchanged by the second pass.
    close(&b.to_vec(&b.grad(&first, &x).unwrap()), &g1, 0.0);
}

fn greedy_rows_match_host_sampling<B: Backend>(b: B) {
    use crate::sampling::{SamplingParams, sample_row};
    use rand::SeedableRng;
    let (rows, v) = (5, 37);
    let mut data = values(rows * v, 9);
    // A tie for the maximum in row 2: the first index wins, on every backend.
    data[2 * v + 4] = 5.0;
    data[2 * v + 30] = 5.0;
    let picks = b.greedy_rows(b.tensor(data.clone(), &[rows, v]));
    assert_eq!(picks.len(), rows);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for (r, (token, logprob)) in picks.iter().enumerate() {
        let want = sample_row(&data[r * v..(r + 1) * v], &SamplingParams::greedy(), &mut rng);
        assert_eq!(*token, want.token, "row {r}");
        assert!((logprob - want.policy_logprob).abs() < 1e-5, "row {r}: {logprob} vs {}", want.policy_logprob);
    }
    assert_eq!(picks[2].0, 4);
}

/// Instantiates every check above for one backend (`$plain` without autodiff, `$autodiff` with).
macro_rules! backend_tests {
    ($module:ident, $plain:expr, $autodiff:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn shapes_reshape_transpose_narrow_cat() {
                super::shapes_reshape_transpose_narrow_cat($plain);
            }
            #[test]
            fn elementwise_broadcast_and_reductions() {
                super::elementwise_broadcast_and_reductions($plain);
            }
            #[test]
            fn linear_matmul_embedding_gather() {
                super::linear_matmul_embedding_gather($plain);
            }
            #[test]
            fn softmax_log_softmax_rms_norm() {
                super::softmax_log_softmax_rms_norm($plain);
            }
            #[test]
            fn rope_rotates_halves() {
                super::rope_rotates_halves($plain);
            }
            #[test]
            fn grouped_query_attention_with_masks_matches_reference() {
                super::grouped_query_attention_with_masks_matches_reference($plain);
            }
            #[test]
            fn biased_attention_matches_reference() {
                super::biased_attention_matches_reference($plain);
            }
            #[test]
            fn gradients_flow_into_an_attention_bias() {
                super::gradients_flow_into_an_attention_bias($autodiff);
            }
            #[test]
            fn greedy_rows_match_host_sampling() {
                super::greedy_rows_match_host_sampling($plain);
            }
            #[test]
            fn kv_cache_write_read_move() {
                super::kv_cache_write_read_move($plain);
            }
            #[test]
            fn autodiff_gradients_match_analytic_values() {
                let b = $autodiff;
                assert!(b.is_autodiff());
                super::autodiff_gradients_match_analytic_values(b);
            }
            #[test]
            fn gradients_flow_through_attention_norm_and_log_softmax() {
                super::gradients_flow_through_attention_norm_and_log_softmax($autodiff);
            }
            #[test]
            fn adamw_update_matches_host_kernel() {
                super::adamw_update_matches_host_kernel($autodiff);
            }
            #[test]
            fn backward_passes_do_not_accumulate() {
                super::backward_passes_do_not_accumulate($autodiff);
            }
        }
    };
}

backend_tests!(burn, BurnBackend::flex(), BurnBackend::flex_autodiff());
#[cfg(feature = "tch")]
backend_tests!(tch, super::super::tch::TchBackend::cpu(), super::super::tch::TchBackend::cpu_autodiff());
