//! Where a backend runs, written as in PyTorch (`cpu`, `cuda:N`). Parsed without any tensor
//! library so configuration can be validated in every build, with or without the `tch` feature.

use std::fmt;
use std::str::FromStr;

/// A compute device: the host CPU or one CUDA GPU by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceSpec {
    /// The host CPU.
    #[default]
    Cpu,
    /// CUDA device `N` (`cuda:N`; plain `cuda` means `cuda:0`).
    Cuda(usize),
}

/// A device string that is neither `cpu` nor `cuda:N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device {given:?}: expected \"cpu\" or \"cuda:N\" (N a GPU index, e.g. \"cuda:0\")")]
pub struct DeviceParseError {
    /// The string given.
    pub given: String,
}

impl FromStr for DeviceSpec {
    type Err = DeviceParseError;

    fn from_str(s: &str) -> Result<DeviceSpec, DeviceParseError> {
        let err = || DeviceParseError { given: s.to_string() };
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => {
                let index = s.strip_prefix("cuda:").ok_or_else(err)?;
                // Digits only: `usize::from_str` would also accept a leading `+`.
                if index.is_empty() || !index.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(err());
                }
                index.parse().map(DeviceSpec::Cuda).map_err(|_| err())
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_cuda_indices() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        assert_eq!(DeviceSpec::Cpu.to_string(), "cpu");
    }

    #[test]
    fn rejects_anything_else_with_the_expected_forms() {
        for bad in ["", "CPU", "gpu", "cuda:", "cuda:x", "cuda:+1", "cuda:-1", "cuda:1:2", "mps"] {
            let e = bad.parse::<DeviceSpec>().unwrap_err();
            assert_eq!(e.given, bad);
            assert!(e.to_string().contains("\"cuda:N\""), "{e}");
        }
    }
}
