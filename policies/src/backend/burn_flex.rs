//! [`Backend`] over burn 0.22 (`flex`: burn's pure-Rust CPU backend; any burn device works).
//!
//! burn tensors carry their rank in the type (`Tensor<D>`); the seam is rank-erased, so every
//! tensor is stored as a `Tensor<4>` with leading singleton dimensions plus its logical rank.

use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Gradients, Int, Tensor, TensorData, activation};

use super::{AttentionMask, Backend};

/// burn on one device; `BurnBackend::flex()` is the default CPU backend.
#[derive(Clone, Debug)]
pub struct BurnBackend {
    device: Device,
}

/// A rank-erased burn tensor: a 4-D tensor whose first `4 - rank` dims are 1.
#[derive(Clone, Debug)]
pub struct BurnTensor {
    inner: Tensor<4>,
    rank: usize,
}

/// burn's key/value cache: one preallocated `[slots, Hkv, capacity, D]` tensor per layer for
/// keys and one for values, updated in place (burn-flex writes into uniquely owned buffers).
pub struct BurnKvCache {
    keys: Vec<Option<Tensor<4>>>,
    values: Vec<Option<Tensor<4>>>,
    capacity: usize,
}

impl BurnBackend {
    /// The flex CPU backend without autodiff (inference, generation).
    pub fn flex() -> BurnBackend {
        BurnBackend { device: Device::flex() }
    }
    /// The flex CPU backend with autodiff (training).
    pub fn flex_autodiff() -> BurnBackend {
        BurnBackend { device: Device::flex().autodiff() }
    }
    /// The device tensors are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// Pads a logical shape (rank 1..=4) with leading ones.
fn dims4(shape: &[usize]) -> [usize; 4] {
    assert!((1..=4).contains(&shape.len()), "burn backend: rank {} not in 1..=4 ({shape:?})", shape.len());
    let mut d = [1usize; 4];
    d[4 - shape.len()..].copy_from_slice(shape);
    d
}

impl BurnTensor {
    fn wrap(inner: Tensor<4>, rank: usize) -> BurnTensor {
        BurnTensor { inner, rank }
    }
    /// Physical dim of a logical dim.
    fn dim(&self, d: usize) -> usize {
        assert!(d < self.rank, "dim {d} out of range for rank {}", self.rank);
        4 - self.rank + d
    }
}

/// Logical rank of a broadcasting binary op's result.
fn rank2(a: &BurnTensor, b: &BurnTensor) -> usize {
    a.rank.max(b.rank)
}

impl Backend for BurnBackend {
    type Tensor = BurnTensor;
    type Grads = Gradients;
    type KvCache = BurnKvCache;

    fn name(&self) -> String {
        if self.device.is_autodiff() { "burn-flex+autodiff".into() } else { "burn-flex".into() }
    }

    fn is_autodiff(&self) -> bool {
        self.device.is_autodiff()
    }

    fn tensor(&self, data: Vec<f32>, shape: &[usize]) -> BurnTensor {
        let d = dims4(shape);
        assert_eq!(data.len(), d.iter().product::<usize>(), "tensor data does not match shape {shape:?}");
        BurnTensor::wrap(Tensor::<4>::from_data(TensorData::new(data, d), &self.device), shape.len())
    }

    fn param(&self, data: Vec<f32>, shape: &[usize]) -> BurnTensor {
        let t = self.tensor(data, shape);
        if self.device.is_autodiff() { BurnTensor::wrap(t.inner.require_grad(), t.rank) } else { t }
    }

    fn to_vec(&self, t: &BurnTensor) -> Vec<f32> {
        let data = t.inner.to_data();
        match data.as_slice::<f32>() {
            Ok(s) => s.to_vec(),
            // Not f32 storage (never created by this backend): convert element by element.
            Err(_) => data.convert::<f32>().as_slice::<f32>().map(|s| s.to_vec()).unwrap_or_default(),
        }
    }

    fn shape(&self, t: &BurnTensor) -> Vec<usize> {
        t.inner.dims()[4 - t.rank..].to_vec()
    }

    fn reshape(&self, t: BurnTensor, shape: &[usize]) -> BurnTensor {
        BurnTensor::wrap(t.inner.reshape(dims4(shape)), shape.len())
    }

    fn transpose(&self, t: BurnTensor, a: usize, b: usize) -> BurnTensor {
        let (pa, pb) = (t.dim(a), t.dim(b));
        BurnTensor::wrap(t.inner.swap_dims(pa, pb), t.rank)
    }

    fn narrow(&self, t: BurnTensor, dim: usize, start: usize, len: usize) -> BurnTensor {
        let p = t.dim(dim);
        BurnTensor::wrap(t.inner.narrow(p, start, len), t.rank)
    }

    fn cat(&self, ts: Vec<BurnTensor>, dim: usize) -> BurnTensor {
        let rank = ts[0].rank;
        let p = ts[0].dim(dim);
        BurnTensor::wrap(Tensor::cat(ts.into_iter().map(|t| t.inner).collect(), p), rank)
    }

    fn add(&self, a: BurnTensor, b: BurnTensor) -> BurnTensor {
        let r = rank2(&a, &b);
        BurnTensor::wrap(a.inner.add(b.inner), r)
    }
    fn sub(&self, a: BurnTensor, b: BurnTensor) -> BurnTensor {
        let r = rank2(&a, &b);
        BurnTensor::wrap(a.inner.sub(b.inner), r)
    }
    fn mul(&self, a: BurnTensor, b: BurnTensor) -> BurnTensor {
        let r = rank2(&a, &b);
        BurnTensor::wrap(a.inner.mul(b.inner), r)
    }
    fn div(&self, a: BurnTensor, b: BurnTensor) -> BurnTensor {
        let r = rank2(&a, &b);
        BurnTensor::wrap(a.inner.div(b.inner), r)
    }
    fn minimum(&self, a: BurnTensor, b: BurnTensor) -> BurnTensor {
        let r = rank2(&a, &b);
        BurnTensor::wrap(a.inner.min_pair(b.inner), r)
    }
    fn mul_scalar(&self, t: BurnTensor, s: f32) -> BurnTensor {
        BurnTensor::wrap(t.inner.mul_scalar(s), t.rank)
    }
    fn add_scalar(&self, t: BurnTensor, s: f32) -> BurnTensor {
        BurnTensor::wrap(t.inner.add_scalar(s), t.rank)
    }
    fn exp(&self, t: BurnTensor) -> BurnTensor {
        BurnTensor::wrap(t.inner.exp(), t.rank)
    }
    fn log(&self, t: BurnTensor) -> BurnTensor {
        BurnTensor::wrap(t.inner.log(), t.rank)
    }
    fn sqrt(&self, t: BurnTensor) -> BurnTensor {
        BurnTensor::wrap(t.inner.sqrt(), t.rank)
    }
    fn clamp(&self, t: BurnTensor, min: f32, max: f32) -> BurnTensor {
        BurnTensor::wrap(t.inner.clamp(min, max), t.rank)
    }
    fn silu(&self, t: BurnTensor) -> BurnTensor {
        BurnTensor::wrap(activation::silu(t.inner), t.rank)
    }

    fn sum_dim(&self, t: BurnTensor, dim: usize) -> BurnTensor {
        let p = t.dim(dim);
        BurnTensor::wrap(t.inner.sum_dim(p), t.rank)
    }
    fn mean_dim(&self, t: BurnTensor, dim: usize) -> BurnTensor {
        let p = t.dim(dim);
        BurnTensor::wrap(t.inner.mean_dim(p), t.rank)
    }
    fn max_dim(&self, t: BurnTensor, dim: usize) -> BurnTensor {
        let p = t.dim(dim);
        BurnTensor::wrap(t.inner.max_dim(p), t.rank)
    }
    fn sum_all(&self, t: BurnTensor) -> BurnTensor {
        BurnTensor::wrap(t.inner.sum().reshape([1, 1, 1, 1]), 1)
    }

    fn matmul(&self, a: BurnTensor, b: BurnTensor) -> BurnTensor {
        let r = rank2(&a, &b);
        BurnTensor::wrap(a.inner.matmul(b.inner), r)
    }

    fn linear(&self, x: BurnTensor, w: &BurnTensor, bias: Option<&BurnTensor>) -> BurnTensor {
        // Fold all leading dims into the row dim so the weight is read once per call
        // (a broadcast batched matmul would run one GEMM per leading index).
        let shape = self.shape(&x);
        let [_, _, k, n] = w.inner.dims();
        let rows: usize = shape[..shape.len() - 1].iter().product();
        assert_eq!(shape[shape.len() - 1], k, "linear: input width {shape:?} does not match weight [{k}, {n}]");
        let mut y = x.inner.reshape([1, 1, rows, k]).matmul(w.inner.clone());
        if let Some(b) = bias {
            y = y.add(b.inner.clone());
        }
        let mut out = shape.clone();
        *out.last_mut().unwrap() = n;
        BurnTensor::wrap(y.reshape(dims4(&out)), out.len())
    }

    fn embedding(&self, weight: &BurnTensor, ids: &[u32], batch: usize, seq: usize) -> BurnTensor {
        assert_eq!(ids.len(), batch * seq, "embedding: {} ids for batch {batch} × seq {seq}", ids.len());
        let [_, _, v, d] = weight.inner.dims();
        let idx: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [ids.len()]), &self.device);
        let rows = weight.inner.clone().reshape([v, d]).select(0, idx);
        BurnTensor::wrap(rows.reshape([1, batch, seq, d]), 3)
    }

    fn softmax(&self, t: BurnTensor, dim: usize) -> BurnTensor {
        let p = t.dim(dim);
        BurnTensor::wrap(activation::softmax(t.inner, p), t.rank)
    }
    fn log_softmax(&self, t: BurnTensor, dim: usize) -> BurnTensor {
        let p = t.dim(dim);
        BurnTensor::wrap(activation::log_softmax(t.inner, p), t.rank)
    }

    fn gather_last(&self, t: BurnTensor, ids: &[u32]) -> BurnTensor {
        let [a, b, c, _] = t.inner.dims();
        assert_eq!(ids.len(), a * b * c, "gather_last: {} ids for {} rows", ids.len(), a * b * c);
        let idx: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<4, Int>::from_data(TensorData::new(idx, [a, b, c, 1]), &self.device);
        BurnTensor::wrap(t.inner.gather(3, idx), t.rank)
    }

    fn attention(&self, q: BurnTensor, k: BurnTensor, v: BurnTensor, mask: &AttentionMask) -> BurnTensor {
        let [b, h, s, d] = q.inner.dims();
        let [_, hkv, l, _] = k.inner.dims();
        let g = h / hkv;
        // Grouped-query attention without repeating K/V: the `g` query heads that share a
        // key/value head become `g * s` query rows of that head.
        let q = q.inner.reshape([b, hkv, g * s, d]);
        let mut bits = vec![false; b * g * s * l];
        for row in 0..b {
            let (start, klen) = (mask.query_start[row], mask.key_len[row]);
            for gi in 0..g {
                for si in 0..s {
                    let base = ((row * g + gi) * s + si) * l;
                    let last_visible = start + si;
                    for j in 0..l {
                        bits[base + j] = j > last_visible || j >= klen;
                    }
                }
            }
        }
        let m = Tensor::<4, Bool>::from_data(TensorData::new(bits, [b, 1, g * s, l]), &self.device);
        let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: false };
        let out = burn_attention(q, k.inner, v.inner, Some(m), None, options);
        BurnTensor::wrap(out.reshape([b, h, s, d]), 4)
    }

    fn kv_cache(&self, layers: usize, slots: usize, kv_heads: usize, capacity: usize, head_dim: usize) -> BurnKvCache {
        let zeros = || Some(Tensor::<4>::zeros([slots, kv_heads, capacity, head_dim], &self.device));
        BurnKvCache { keys: (0..layers).map(|_| zeros()).collect(), values: (0..layers).map(|_| zeros()).collect(), capacity }
    }

    fn kv_write(&self, cache: &mut BurnKvCache, layer: usize, slots: &[usize], positions: &[usize], k: BurnTensor, v: BurnTensor) {
        let [n, hkv, s, d] = k.inner.dims();
        assert_eq!(n, slots.len());
        for (i, (&slot, &pos)) in slots.iter().zip(positions).enumerate() {
            assert!(pos + s <= cache.capacity, "kv cache overflow: {} > {}", pos + s, cache.capacity);
            let ranges = [slot..slot + 1, 0..hkv, pos..pos + s, 0..d];
            let kc = cache.keys[layer].take().expect("kv cache keys present");
            cache.keys[layer] = Some(kc.slice_assign(ranges.clone(), k.inner.clone().narrow(0, i, 1)));
            let vc = cache.values[layer].take().expect("kv cache values present");
            cache.values[layer] = Some(vc.slice_assign(ranges, v.inner.clone().narrow(0, i, 1)));
        }
    }

    fn kv_read(&self, cache: &BurnKvCache, layer: usize, first: usize, n: usize, len: usize) -> (BurnTensor, BurnTensor) {
        let read = |t: &Option<Tensor<4>>| {
            let t = t.as_ref().expect("kv cache present").clone();
            BurnTensor::wrap(t.narrow(0, first, n).narrow(2, 0, len), 4)
        };
        (read(&cache.keys[layer]), read(&cache.values[layer]))
    }

    fn kv_move(&self, cache: &mut BurnKvCache, from: usize, to: usize, len: usize) {
        if from == to || len == 0 {
            return;
        }
        for store in [&mut cache.keys, &mut cache.values] {
            for slot in store.iter_mut() {
                let t = slot.take().expect("kv cache present");
                let [_, hkv, _, d] = t.dims();
                let src = t.clone().slice([from..from + 1, 0..hkv, 0..len, 0..d]);
                *slot = Some(t.slice_assign([to..to + 1, 0..hkv, 0..len, 0..d], src));
            }
        }
    }

    fn backward(&self, loss: &BurnTensor) -> Gradients {
        loss.inner.backward()
    }

    fn grad(&self, grads: &Gradients, param: &BurnTensor) -> Option<BurnTensor> {
        param.inner.grad(grads).map(|g| BurnTensor::wrap(g, param.rank))
    }

    fn detach(&self, t: BurnTensor) -> BurnTensor {
        BurnTensor::wrap(t.inner.detach(), t.rank)
    }

    fn adamw_update(
        &self,
        param: BurnTensor,
        grad: BurnTensor,
        exp_avg: Option<BurnTensor>,
        exp_avg_sq: Option<BurnTensor>,
        scalars: &crate::backend::adamw::AdamWScalars,
    ) -> (BurnTensor, BurnTensor, BurnTensor) {
        // In place: `inner()` drops the autodiff wrapper and flex's `into_data` hands over the
        // buffer without a copy when the tensor is its only owner, so the update is one pass
        // over parameter, gradient and moments (a shared or strided buffer is copied first).
        let (rank, dims) = (param.rank, param.inner.dims());
        let inner = param.inner.inner();
        let state_device = inner.device();
        let f32_data = |t: Tensor<4>| {
            let d = t.inner().into_data();
            if d.as_slice::<f32>().is_ok() { d } else { d.convert::<f32>() }
        };
        let mut p = f32_data(inner);
        let g = f32_data(grad.inner);
        let n: usize = dims.iter().product();
        let zeros = || TensorData::new(vec![0.0f32; n], dims);
        let mut m = exp_avg.map(|t| f32_data(t.inner)).unwrap_or_else(zeros);
        let mut v = exp_avg_sq.map(|t| f32_data(t.inner)).unwrap_or_else(zeros);
        crate::backend::adamw::adamw_kernel(
            p.as_mut_slice::<f32>().expect("f32 parameter data"),
            g.as_slice::<f32>().expect("f32 gradient data"),
            m.as_mut_slice::<f32>().expect("f32 moment data"),
            v.as_mut_slice::<f32>().expect("f32 moment data"),
            scalars,
        );
        let p = Tensor::<4>::from_data(p, &self.device);
        let p = if self.device.is_autodiff() { p.require_grad() } else { p };
        let m = Tensor::<4>::from_data(m, &state_device);
        let v = Tensor::<4>::from_data(v, &state_device);
        (BurnTensor::wrap(p, rank), BurnTensor::wrap(m, rank), BurnTensor::wrap(v, rank))
    }
}
