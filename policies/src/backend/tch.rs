//! [`Backend`] over libtorch through tch 0.24 (PyTorch 2.11), on the CPU or a CUDA GPU.
//! Compiled only with the `tch` feature.
//!
//! Tensors are libtorch tensors used as immutable values, as the seam expects: every operation
//! returns a new tensor, and the only in-place writes are to buffers this module owns outright
//! (the key/value cache, optimizer moments, the parameter gradients it hands out).
//!
//! Gradients: libtorch accumulates a backward pass into each leaf's `.grad`; the seam wants a
//! gradient object per backward pass. [`TchGrads`] therefore copies a leaf's `.grad` on first
//! request and zeroes it, so the next backward pass starts from zero again. A leaf whose gradient
//! is never read keeps accumulating (every training path reads all trainable leaves, through
//! the trainer's gradient collection); a leaf that took part in an earlier pass but not in this one
//! reports a zero gradient rather than none.
//!
//! Speed on CPU: measured on the 2-core AMD EPYC build machine (2026-11-21, load average ~4),
//! a 64-token SmolLM2 forward took 6.2–7.0 s here, 7.0 s in Python PyTorch 2.11 itself (2.5 s
//! with `torch.set_flush_denormal(True)`) and 0.55 s on burn-flex; `memrl bench policy --quick`
//! gave learner 1.8 vs 14.7 tok/s and decode (batch 8) 3.6 vs 43.7 tok/s. So libtorch's CPU
//! kernels, not this binding, are slow on that machine: use tch for CUDA; on CPU it serves the
//! parity tests.
//!
//! Precision ([`Precision`], [`TchBackend::with_precision`]): `F32` computes everything in f32.
//! `Bf16` is mixed precision done by explicit casts at the operators, with the op policy of
//! PyTorch's autocast: matrix products ([`Backend::linear`], [`Backend::matmul`]) and attention
//! cast their inputs to bfloat16 and return bfloat16; RMSNorm computes in f32; softmax and
//! log-softmax return f32; other element-wise operators follow PyTorch's type promotion. On an
//! autodiff backend parameters are f32 leaves (the master weights): the bf16 copy a matmul
//! makes is part of the graph, so gradients arrive in the leaves' `.grad` as f32 and AdamW and
//! its moments stay f32; the residual stream (embedding + residual adds) stays f32 as under
//! autocast. An inference backend (no autodiff) stores parameters, constants and the key/value
//! cache in bf16 directly, as transformers does with `dtype=torch.bfloat16`, so decode reads
//! half the bytes. (tch 0.24's `autocast` only switches CUDA autocast on with PyTorch's default
//! float16 and does nothing on the CPU, hence the explicit casts, which run and are tested on
//! both.) Data crosses the seam as f32 either way.

use std::collections::HashMap;
use std::sync::Mutex;

use ::tch::{Device, Kind, Tensor};

use super::device::DeviceSpec;
use super::precision::Precision;
use super::{AttentionMask, Backend};

/// libtorch on one device, with or without autodiff.
#[derive(Clone, Debug)]
pub struct TchBackend {
    device: Device,
    spec: DeviceSpec,
    kind: Kind,
    autodiff: bool,
}

/// A libtorch tensor. `clone` is a shallow copy (shared storage), which is safe because the
/// seam never mutates a tensor it has handed out.
#[derive(Debug)]
pub struct TchTensor(Tensor);

impl Clone for TchTensor {
    fn clone(&self) -> TchTensor {
        TchTensor(self.0.shallow_clone())
    }
}

// SAFETY: tch marks `Tensor` `Send` but not `Sync` because some of its methods mutate. Through
// `&TchTensor` this module only runs libtorch's out-of-place operators, which are safe to call
// concurrently on a shared tensor (as in PyTorch's own multi-threaded inference); in-place
// writes happen only to tensors this module owns exclusively (cache, moments, `.grad` copies).
unsafe impl Sync for TchTensor {}

impl TchTensor {
    /// The libtorch tensor (for code that needs a torch operator the seam lacks).
    pub fn as_tch(&self) -> &Tensor {
        &self.0
    }
}

/// The gradients of one backward pass, read lazily from the leaves' `.grad` (see the module
/// documentation). Keyed by the leaf's storage address, so tied weights share one entry.
pub struct TchGrads {
    taken: Mutex<HashMap<usize, Option<TchTensor>>>,
}

/// libtorch's key/value cache: one `[slots, Hkv, capacity, D]` tensor per layer for keys and
/// one for values, written in place.
pub struct TchKvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    capacity: usize,
}

/// A device libtorch cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tch backend: device {device} is not available: {reason}")]
pub struct TchDeviceError {
    /// The device asked for.
    pub device: DeviceSpec,
    /// Why it cannot be used.
    pub reason: String,
}

impl TchBackend {
    /// libtorch on `device` (f32), with autodiff when `autodiff` (training). A CUDA device must
    /// exist: libtorch was built with CUDA and sees more than `N` GPUs.
    pub fn new(device: DeviceSpec, autodiff: bool) -> Result<TchBackend, TchDeviceError> {
        let tch_device = match device {
            DeviceSpec::Cpu => Device::Cpu,
            DeviceSpec::Cuda(n) => {
                let count = ::tch::Cuda::device_count().max(0) as usize;
                if n >= count {
                    return Err(TchDeviceError {
                        device,
                        reason: format!("libtorch sees {count} CUDA device(s) (is PyTorch a CUDA build, is a GPU visible?)"),
                    });
                }
                Device::Cuda(n)
            }
        };
        Ok(TchBackend { device: tch_device, spec: device, kind: Kind::Float, autodiff })
    }
    /// libtorch on the CPU without autodiff (inference, generation).
    pub fn cpu() -> TchBackend {
        TchBackend { device: Device::Cpu, spec: DeviceSpec::Cpu, kind: Kind::Float, autodiff: false }
    }
    /// libtorch on the CPU with autodiff (training).
    pub fn cpu_autodiff() -> TchBackend {
        TchBackend { autodiff: true, ..TchBackend::cpu() }
    }
    /// The same device with autodiff switched on or off.
    pub fn with_autodiff(&self, autodiff: bool) -> TchBackend {
        TchBackend { autodiff, ..self.clone() }
    }
    /// The device tensors are created on.
    pub fn device(&self) -> DeviceSpec {
        self.spec
    }
    /// The dtype matrix products and attention compute in (`Kind::Float` or `Kind::BFloat16`).
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The same device and autodiff setting computing in `precision` (see the module doc).
    pub fn with_precision(&self, precision: Precision) -> TchBackend {
        let kind = match precision {
            Precision::F32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        };
        TchBackend { kind, ..self.clone() }
    }
    /// The compute precision.
    pub fn precision(&self) -> Precision {
        if self.kind == Kind::BFloat16 { Precision::Bf16 } else { Precision::F32 }
    }
    /// The dtype [`Backend::param`] and [`Backend::tensor`] store: f32 on an autodiff backend
    /// (master weights, optimizer moments, loss inputs), the compute dtype otherwise.
    fn storage_kind(&self) -> Kind {
        if self.autodiff { Kind::Float } else { self.kind }
    }
    /// `t` in the compute dtype (the same tensor when it already is).
    fn compute(&self, t: &Tensor) -> Tensor {
        if t.kind() == self.kind { t.shallow_clone() } else { t.to_kind(self.kind) }
    }
    /// Sets libtorch's intra-op thread count (process-wide; libtorch's default is one per core).
    pub fn set_num_threads(threads: usize) {
        ::tch::set_num_threads(threads.clamp(1, i32::MAX as usize) as i32);
    }
    /// Index tensor (`i64`) on this device.
    fn index(&self, ids: &[u32], shape: &[i64]) -> Tensor {
        let idx: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        Tensor::from_slice(&idx).reshape(shape).to_device(self.device)
    }
}

/// A logical dim as libtorch's `i64`.
fn d(dim: usize) -> i64 {
    dim as i64
}

fn shape_i64(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&s| s as i64).collect()
}

/// Whether the mask is plain causal attention over the full key range (libtorch's `is_causal`
/// path, no mask tensor): every row starts at 0, sees all `l` keys, and queries fill the keys.
fn is_plain_causal(mask: &AttentionMask, s: usize, l: usize) -> bool {
    s == l && mask.query_start.iter().all(|&q| q == 0) && mask.key_len.iter().all(|&k| k == l)
}

/// Whether every query may see every key (e.g. one decode step of full-length rows).
fn is_unmasked(mask: &AttentionMask, l: usize) -> bool {
    // The first query of a row sees keys `0 ..= query_start`, later queries more.
    mask.query_start.iter().zip(&mask.key_len).all(|(&q, &k)| k == l && q + 1 >= l)
}

impl Backend for TchBackend {
    type Tensor = TchTensor;
    type Grads = TchGrads;
    type KvCache = TchKvCache;

    fn name(&self) -> String {
        let base = match self.precision() {
            Precision::F32 => format!("tch-{}", self.spec),
            Precision::Bf16 => format!("tch-{}-bf16", self.spec),
        };
        if self.autodiff { format!("{base}+autodiff") } else { base }
    }

    fn is_autodiff(&self) -> bool {
        self.autodiff
    }

    fn tensor(&self, data: Vec<f32>, shape: &[usize]) -> TchTensor {
        assert_eq!(data.len(), shape.iter().product::<usize>(), "tensor data does not match shape {shape:?}");
        let t = Tensor::from_slice(&data).reshape(shape_i64(shape));
        TchTensor(t.to_device(self.device).to_kind(self.storage_kind()))
    }

    fn param(&self, data: Vec<f32>, shape: &[usize]) -> TchTensor {
        let t = self.tensor(data, shape);
        if self.autodiff { TchTensor(t.0.set_requires_grad(true)) } else { t }
    }

    fn to_vec(&self, t: &TchTensor) -> Vec<f32> {
        let host = t.0.detach().to_kind(Kind::Float).to_device(Device::Cpu).contiguous();
        let n = host.numel();
        let mut out = vec![0.0f32; n];
        host.copy_data(&mut out, n);
        out
    }

    fn shape(&self, t: &TchTensor) -> Vec<usize> {
        t.0.size().into_iter().map(|s| s as usize).collect()
    }

    fn reshape(&self, t: TchTensor, shape: &[usize]) -> TchTensor {
        TchTensor(t.0.reshape(shape_i64(shape)))
    }

    fn transpose(&self, t: TchTensor, a: usize, b: usize) -> TchTensor {
        TchTensor(t.0.transpose(d(a), d(b)))
    }

    fn narrow(&self, t: TchTensor, dim: usize, start: usize, len: usize) -> TchTensor {
        TchTensor(t.0.narrow(d(dim), start as i64, len as i64))
    }

    fn cat(&self, ts: Vec<TchTensor>, dim: usize) -> TchTensor {
        let ts: Vec<Tensor> = ts.into_iter().map(|t| t.0).collect();
        TchTensor(Tensor::cat(&ts, d(dim)))
    }

    fn add(&self, a: TchTensor, b: TchTensor) -> TchTensor {
        TchTensor(a.0 + b.0)
    }
    fn sub(&self, a: TchTensor, b: TchTensor) -> TchTensor {
        TchTensor(a.0 - b.0)
    }
    fn mul(&self, a: TchTensor, b: TchTensor) -> TchTensor {
        TchTensor(a.0 * b.0)
    }
    fn div(&self, a: TchTensor, b: TchTensor) -> TchTensor {
        TchTensor(a.0 / b.0)
    }
    fn minimum(&self, a: TchTensor, b: TchTensor) -> TchTensor {
        TchTensor(a.0.minimum(&b.0))
    }
    fn mul_scalar(&self, t: TchTensor, s: f32) -> TchTensor {
        TchTensor(t.0 * s as f64)
    }
    fn add_scalar(&self, t: TchTensor, s: f32) -> TchTensor {
        TchTensor(t.0 + s as f64)
    }
    fn exp(&self, t: TchTensor) -> TchTensor {
        TchTensor(t.0.exp())
    }
    fn log(&self, t: TchTensor) -> TchTensor {
        TchTensor(t.0.log())
    }
    fn sqrt(&self, t: TchTensor) -> TchTensor {
        TchTensor(t.0.sqrt())
    }
    fn clamp(&self, t: TchTensor, min: f32, max: f32) -> TchTensor {
        TchTensor(t.0.clamp(min as f64, max as f64))
    }
    fn silu(&self, t: TchTensor) -> TchTensor {
        TchTensor(t.0.silu())
    }

    fn sum_dim(&self, t: TchTensor, dim: usize) -> TchTensor {
        TchTensor(t.0.sum_dim_intlist([d(dim)].as_slice(), true, None::<Kind>))
    }
    fn mean_dim(&self, t: TchTensor, dim: usize) -> TchTensor {
        TchTensor(t.0.mean_dim([d(dim)].as_slice(), true, None::<Kind>))
    }
    fn max_dim(&self, t: TchTensor, dim: usize) -> TchTensor {
        TchTensor(t.0.max_dim(d(dim), true).0)
    }
    fn sum_all(&self, t: TchTensor) -> TchTensor {
        TchTensor(t.0.sum(None::<Kind>).reshape([1]))
    }

    fn matmul(&self, a: TchTensor, b: TchTensor) -> TchTensor {
        TchTensor(self.compute(&a.0).matmul(&self.compute(&b.0)))
    }

    fn linear(&self, x: TchTensor, w: &TchTensor, bias: Option<&TchTensor>) -> TchTensor {
        // libtorch folds the leading dims of `x` into one GEMM itself.
        let y = self.compute(&x.0).matmul(&self.compute(&w.0));
        TchTensor(match bias {
            Some(b) => y + self.compute(&b.0),
            None => y,
        })
    }

    fn embedding(&self, weight: &TchTensor, ids: &[u32], batch: usize, seq: usize) -> TchTensor {
        assert_eq!(ids.len(), batch * seq, "embedding: {} ids for batch {batch} × seq {seq}", ids.len());
        let dim = weight.0.size()[1];
        let rows = weight.0.index_select(0, &self.index(ids, &[ids.len() as i64]));
        TchTensor(rows.reshape([batch as i64, seq as i64, dim]))
    }

    fn softmax(&self, t: TchTensor, dim: usize) -> TchTensor {
        TchTensor(t.0.softmax(d(dim), Kind::Float))
    }
    fn log_softmax(&self, t: TchTensor, dim: usize) -> TchTensor {
        TchTensor(t.0.log_softmax(d(dim), Kind::Float))
    }

    fn gather_last(&self, t: TchTensor, ids: &[u32]) -> TchTensor {
        let mut shape = t.0.size();
        let last = shape.len() - 1;
        let rows: i64 = shape[..last].iter().product();
        assert_eq!(ids.len() as i64, rows, "gather_last: {} ids for {rows} rows", ids.len());
        shape[last] = 1;
        TchTensor(t.0.gather(last as i64, &self.index(ids, &shape), false))
    }

    /// transformers' `LlamaRMSNorm` op for op: `w * (x * rsqrt(mean(x², -1) + eps))`, the
    /// normalisation in f32 and cast back to `x`'s dtype before the weight multiplies it.
    fn rms_norm(&self, x: TchTensor, weight: &TchTensor, eps: f32) -> TchTensor {
        let input_kind = x.0.kind();
        let xf = if input_kind == Kind::Float { x.0 } else { x.0.to_kind(Kind::Float) };
        let var = xf.square().mean_dim([-1i64].as_slice(), true, None::<Kind>);
        let normed = &xf * (var + eps as f64).rsqrt();
        let normed = if input_kind == Kind::Float { normed } else { normed.to_kind(input_kind) };
        TchTensor(&weight.0 * normed)
    }

    fn attention(&self, q: TchTensor, k: TchTensor, v: TchTensor, mask: &AttentionMask) -> TchTensor {
        let [b, h, s, _] = q.0.size()[..] else { panic!("attention: q must be [B, H, S, D], got {:?}", q.0.size()) };
        let [_, hkv, l, _] = k.0.size()[..] else { panic!("attention: k must be [B, Hkv, L, D], got {:?}", k.0.size()) };
        assert_eq!(h % hkv, 0, "attention: {h} query heads are not a multiple of {hkv} key/value heads");
        let (b, s, l) = (b as usize, s as usize, l as usize);
        assert!(mask.query_start.len() == b && mask.key_len.len() == b, "attention: mask rows differ from batch {b}");
        let gqa = h != hkv;
        let (q, k, v) = (TchTensor(self.compute(&q.0)), TchTensor(self.compute(&k.0)), TchTensor(self.compute(&v.0)));
        // The fused kernel (flash / memory-efficient on CUDA, flash on CPU) takes either no mask,
        // `is_causal`, or a boolean mask (true = may attend) broadcast over heads.
        let out = if is_plain_causal(mask, s, l) {
            Tensor::scaled_dot_product_attention(&q.0, &k.0, &v.0, None::<Tensor>, 0.0, true, None, gqa)
        } else if is_unmasked(mask, l) {
            Tensor::scaled_dot_product_attention(&q.0, &k.0, &v.0, None::<Tensor>, 0.0, false, None, gqa)
        } else {
            let mut bits = vec![false; b * s * l];
            for row in 0..b {
                let (start, klen) = (mask.query_start[row], mask.key_len[row]);
                for si in 0..s {
                    let visible = (start + si + 1).min(klen).min(l);
                    bits[(row * s + si) * l..][..visible].fill(true);
                }
            }
            let m = Tensor::from_slice(&bits).reshape([b as i64, 1, s as i64, l as i64]).to_device(self.device);
            // With a mask, CUDA's fused kernel is the memory-efficient one, which (unlike flash)
            // does not take grouped heads (`enable_gqa`) and would fall back to the unfused math
            // kernel; repeating each key/value head over its query group keeps it fused.
            let (k, v) = if gqa {
                let group = h / hkv;
                (k.0.repeat_interleave_self_int(group, 1, None), v.0.repeat_interleave_self_int(group, 1, None))
            } else {
                (k.0, v.0)
            };
            Tensor::scaled_dot_product_attention(&q.0, &k, &v, Some(m), 0.0, false, None, false)
        };
        TchTensor(out)
    }

    fn kv_cache(&self, layers: usize, slots: usize, kv_heads: usize, capacity: usize, head_dim: usize) -> TchKvCache {
        // The compute dtype: attention reads it in that dtype (kv_write's `copy_` casts).
        let zeros = || Tensor::zeros(shape_i64(&[slots, kv_heads, capacity, head_dim]), (self.kind, self.device));
        TchKvCache { keys: (0..layers).map(|_| zeros()).collect(), values: (0..layers).map(|_| zeros()).collect(), capacity }
    }

    fn kv_write(&self, cache: &mut TchKvCache, layer: usize, slots: &[usize], positions: &[usize], k: TchTensor, v: TchTensor) {
        let size = k.0.size();
        let (n, s) = (size[0] as usize, size[2]);
        assert_eq!(n, slots.len(), "kv_write: {n} rows for {} slots", slots.len());
        let _guard = ::tch::no_grad_guard();
        for (i, (&slot, &pos)) in slots.iter().zip(positions).enumerate() {
            assert!(pos + s as usize <= cache.capacity, "kv cache overflow: {} > {}", pos + s as usize, cache.capacity);
            for (store, src) in [(&cache.keys[layer], &k.0), (&cache.values[layer], &v.0)] {
                let mut dst = store.narrow(0, slot as i64, 1).narrow(2, pos as i64, s);
                dst.copy_(&src.narrow(0, i as i64, 1));
            }
        }
    }

    fn kv_read(&self, cache: &TchKvCache, layer: usize, first: usize, n: usize, len: usize) -> (TchTensor, TchTensor) {
        let read = |t: &Tensor| TchTensor(t.narrow(0, first as i64, n as i64).narrow(2, 0, len as i64));
        (read(&cache.keys[layer]), read(&cache.values[layer]))
    }

    fn kv_move(&self, cache: &mut TchKvCache, from: usize, to: usize, len: usize) {
        if from == to || len == 0 {
            return;
        }
        let _guard = ::tch::no_grad_guard();
        for t in cache.keys.iter().chain(cache.values.iter()) {
            let src = t.narrow(0, from as i64, 1).narrow(2, 0, len as i64);
            let mut dst = t.narrow(0, to as i64, 1).narrow(2, 0, len as i64);
            dst.copy_(&src);
        }
    }

    fn backward(&self, loss: &TchTensor) -> TchGrads {
        loss.0.backward();
        TchGrads { taken: Mutex::new(HashMap::new()) }
    }

    fn grad(&self, grads: &TchGrads, param: &TchTensor) -> Option<TchTensor> {
        let key = param.0.data_ptr() as usize;
        let mut taken = grads.taken.lock().unwrap_or_else(|e| e.into_inner());
        taken
            .entry(key)
            .or_insert_with(|| {
                let mut g = param.0.grad();
                if !g.defined() {
                    return None;
                }
                let _guard = ::tch::no_grad_guard();
                let copy = g.detach().copy();
                let _ = g.zero_();
                Some(TchTensor(copy))
            })
            .clone()
    }

    fn detach(&self, t: TchTensor) -> TchTensor {
        TchTensor(t.0.detach())
    }

    fn greedy_rows(&self, logits: TchTensor) -> Vec<(u32, f32)> {
        // On the device: argmax of the logits themselves (ties: first index, as on the host) and
        // its f32 log-softmax; only `rows` ids and values cross to the host.
        let _guard = ::tch::no_grad_guard();
        let v = *logits.0.size().last().expect("logits have rank >= 1");
        let rows = logits.0.reshape([-1, v]);
        let ids = rows.argmax(-1, true);
        let lp = rows.log_softmax(-1, Kind::Float).gather(-1, &ids, false);
        let n = ids.size()[0] as usize;
        let (mut host_ids, mut host_lp) = (vec![0i64; n], vec![0f32; n]);
        ids.to_device(Device::Cpu).reshape([-1]).copy_data(&mut host_ids, n);
        lp.to_device(Device::Cpu).reshape([-1]).copy_data(&mut host_lp, n);
        host_ids.into_iter().map(|i| i as u32).zip(host_lp).collect()
    }

    fn synchronize(&self) {
        if let Device::Cuda(n) = self.device {
            ::tch::Cuda::synchronize(n as i64);
        }
    }

    fn adamw_update(
        &self,
        param: TchTensor,
        grad: TchTensor,
        exp_avg: Option<TchTensor>,
        exp_avg_sq: Option<TchTensor>,
        s: &crate::backend::adamw::AdamWScalars,
    ) -> (TchTensor, TchTensor, TchTensor) {
        // The formula of `adamw_kernel`, as whole-tensor libtorch ops. The moments belong to the
        // optimizer alone and are updated in place; the parameter comes back as a new leaf (a
        // clone of the old one, e.g. a tied `lm_head`, keeps the old values, as on burn).
        let _guard = ::tch::no_grad_guard();
        // f32 whatever the compute precision: master weights and moments are f32.
        let g = grad.0.detach().to_kind(Kind::Float) * s.grad_scale as f64;
        let mut m = exp_avg.map(|t| t.0).unwrap_or_else(|| g.zeros_like());
        let mut v = exp_avg_sq.map(|t| t.0).unwrap_or_else(|| g.zeros_like());
        m += (&g - &m) * s.one_minus_beta1 as f64;
        v *= s.beta2 as f64;
        v += &g * &g * s.one_minus_beta2 as f64;
        let denom = v.sqrt() / s.bias_correction2_sqrt as f64 + s.eps as f64;
        let p = param.0.detach() * s.decay_factor as f64 - (&m / denom) * s.step_size as f64;
        let p = if self.autodiff { p.set_requires_grad(true) } else { p };
        (TchTensor(p), TchTensor(m), TchTensor(v))
    }
}
