//! Which tensor backend a training run uses: `policy.backend`, `policy.device` and
//! `policy.dtype` turned into a backend value (what the run needs of a backend is
//! [`RunBackend`], in the RL core).

use anyhow::bail;

use crate::config::{BackendKind, Config, Device, PolicyDtype};
pub use memrl_rl::policy::{BaseBackend, RunBackend};

/// The error `policy.backend = "tch"` gives in a build without the `tch` feature.
pub const TCH_NOT_BUILT: &str = "policy.backend = \"tch\": this memrl was built without the tch feature; build it with \
     `cargo build --release -p memrl-trainer --features tch` (needs PyTorch 2.11.0: LIBTORCH_USE_PYTORCH, see scripts/test.sh) \
     or set policy.backend = \"burn\"";

/// Refuses backend settings this build or backend cannot run, naming the key to change.
pub fn check_backend(config: &Config) -> anyhow::Result<()> {
    let p = &config.policy;
    match p.backend {
        BackendKind::Burn => {
            if p.device != Device::Cpu {
                bail!("policy.device = \"{}\": the burn backend runs on the CPU only (policy.device = \"cpu\", or policy.backend = \"tch\")", p.device);
            }
            if p.dtype != PolicyDtype::F32 {
                bail!("policy.dtype = \"{}\": the burn backend computes in f32 only (policy.dtype = \"f32\", or policy.backend = \"tch\")", p.dtype);
            }
        }
        BackendKind::Tch => {
            if !cfg!(feature = "tch") {
                bail!(TCH_NOT_BUILT);
            }
        }
    }
    Ok(())
}

/// The autodiff libtorch backend `policy.device` / `policy.dtype` name (a CUDA device must exist).
#[cfg(feature = "tch")]
pub fn tch_backend(config: &Config) -> anyhow::Result<memrl_policies::TchBackend> {
    use memrl_policies::{DeviceSpec, Precision, TchBackend};
    let device = match config.policy.device {
        Device::Cpu => DeviceSpec::Cpu,
        Device::Cuda(n) => DeviceSpec::Cuda(n as usize),
    };
    let precision = match config.policy.dtype {
        PolicyDtype::F32 => Precision::F32,
        PolicyDtype::Bf16 => Precision::Bf16,
    };
    Ok(TchBackend::new(device, true).map_err(|e| anyhow::anyhow!("policy.device = \"{}\": {e}", config.policy.device))?.with_precision(precision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burn_refuses_cuda_and_bf16_naming_the_key() {
        assert!(check_backend(&Config::default()).is_ok());
        let mut c = Config::default();
        c.policy.device = Device::Cuda(0);
        let e = check_backend(&c).unwrap_err().to_string();
        assert!(e.contains("policy.device = \"cuda:0\"") && e.contains("CPU only"), "{e}");
        let mut c = Config::default();
        c.policy.dtype = PolicyDtype::Bf16;
        let e = check_backend(&c).unwrap_err().to_string();
        assert!(e.contains("policy.dtype = \"bf16\"") && e.contains("f32 only"), "{e}");
    }

    #[test]
    fn tch_is_accepted_exactly_when_built_in() {
        let mut c = Config::default();
        c.policy.backend = BackendKind::Tch;
        c.policy.device = Device::Cuda(1);
        c.policy.dtype = PolicyDtype::Bf16;
        match check_backend(&c) {
            Ok(()) => assert!(cfg!(feature = "tch")),
            Err(e) => {
                assert!(!cfg!(feature = "tch"));
                assert!(e.to_string().contains("built without the tch feature") && e.to_string().contains("--features tch"), "{e}");
            }
        }
    }

    #[cfg(feature = "tch")]
    #[test]
    fn tch_backend_follows_device_and_dtype() {
        let mut c = Config::default();
        c.policy.backend = BackendKind::Tch;
        c.policy.dtype = PolicyDtype::Bf16;
        let b = tch_backend(&c).unwrap();
        assert_eq!(memrl_policies::Backend::name(&b), "tch-cpu-bf16+autodiff");
        assert_eq!(memrl_policies::Backend::name(&b.inference()), "tch-cpu-bf16");
        c.policy.device = Device::Cuda(999);
        let e = tch_backend(&c).unwrap_err().to_string();
        assert!(e.contains("policy.device = \"cuda:999\"") && e.contains("not available"), "{e}");
    }
}
