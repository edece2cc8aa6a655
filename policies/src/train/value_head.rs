//! PPO's value head on the policy trunk: its seeded initialisation. The head itself lives on
//! [`Llama::value_head`] (so gradients, AdamW, gradient clipping and checkpoints treat it as one
//! more trainable parameter); [`Llama::values`] applies it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::model::Llama;

/// Std of the value head's initial weights: small, so the first values are near 0 (the bias
/// starts at 0) and the critic's early gradient into the shared trunk is small.
pub const VALUE_HEAD_INIT_STD: f32 = 0.02;

/// Gives `model` a fresh value head: weights normal(0, [`VALUE_HEAD_INIT_STD`]) drawn from a
/// ChaCha8 stream seeded with `seed` (the run's seed, so a run is reproducible), bias 0.
pub fn init_value_head<B: Backend>(model: &mut Llama<B>, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let weight = crate::train::tiny::normals(&mut rng, model.config.hidden_size, VALUE_HEAD_INIT_STD);
    model.attach_value_head(weight, 0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::burn_flex::BurnBackend;
    use crate::train::params::{hf_state_dict, llama_from_hf_tensors};
    use crate::train::tiny::{TinyPreset, init_tiny};

    #[test]
    fn the_head_is_seeded_and_survives_the_hf_round_trip() {
        let mut a = init_tiny(BurnBackend::flex(), TinyPreset::L2D64, 32, 0).unwrap();
        let plain = hf_state_dict(&a).len();
        init_value_head(&mut a, 7);
        let mut b = a.clone();
        init_value_head(&mut b, 7);
        let flat = |m: &Llama<BurnBackend>| hf_state_dict(m).into_iter().map(|(n, t)| (n, t.shape, t.data)).collect::<Vec<_>>();
        let dict = hf_state_dict(&a);
        assert_eq!(dict.len(), plain + 2, "weight and bias are listed");
        assert_eq!(flat(&a), flat(&b), "the same seed draws the same head");
        let (_, w) = dict.iter().find(|(n, _)| n == crate::model::VALUE_HEAD_WEIGHT).unwrap();
        assert_eq!(w.shape, vec![1, 64], "PyTorch layout [out, in]");
        init_value_head(&mut b, 8);
        assert_ne!(flat(&a), flat(&b), "another seed, another head");
        // Through the HF names and back: the same values on the same hidden states.
        let back = llama_from_hf_tensors(BurnBackend::flex(), a.config.clone(), dict).unwrap();
        let be = &a.backend;
        let hidden = a.forward(&[1, 2, 3], 1, 3, &[3]);
        let va = be.to_vec(&a.values(hidden.clone()));
        let vb = be.to_vec(&back.values(hidden));
        assert_eq!(va.len(), 3);
        assert_eq!(va, vb);
        // A model without a head loads without one.
        let plain_model =
            llama_from_hf_tensors(BurnBackend::flex(), a.config.clone(), hf_state_dict(&init_tiny(BurnBackend::flex(), TinyPreset::L2D64, 32, 0).unwrap()))
                .unwrap();
        assert!(plain_model.value_head.is_none());
    }
}
