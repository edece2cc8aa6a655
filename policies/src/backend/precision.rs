//! The floating-point format a backend computes in, written as in configs (`f32`, `bf16`).
//! Parsed without any tensor library so configuration can be validated in every build.

use std::fmt;
use std::str::FromStr;

/// Compute precision of a backend.
///
/// `Bf16` is mixed precision: trainable (master) weights, their gradients and the optimizer
/// moments stay `f32`; matrix products and attention run in bfloat16 on bf16 copies of their
/// inputs; normalisation, softmax / log-softmax and the loss run in `f32`. Inference backends
/// (no autodiff) store their weights in bf16 directly. Only the tch backend implements it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// IEEE single precision everywhere (the default; every backend).
    #[default]
    F32,
    /// bfloat16 matmuls and attention with f32 master weights (tch backend).
    Bf16,
}

/// A precision string that is neither `f32` nor `bf16`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("precision {given:?}: expected \"f32\" or \"bf16\"")]
pub struct PrecisionParseError {
    /// The string given.
    pub given: String,
}

impl FromStr for Precision {
    type Err = PrecisionParseError;

    fn from_str(s: &str) -> Result<Precision, PrecisionParseError> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(PrecisionParseError { given: s.to_string() }),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_two_precisions_and_rejects_others() {
        assert_eq!("f32".parse(), Ok(Precision::F32));
        assert_eq!("bf16".parse(), Ok(Precision::Bf16));
        assert_eq!(Precision::Bf16.to_string(), "bf16");
        for bad in ["", "fp32", "BF16", "f16", "bfloat16"] {
            let e = bad.parse::<Precision>().unwrap_err();
            assert!(e.to_string().contains("\"f32\" or \"bf16\""), "{e}");
        }
    }
}
