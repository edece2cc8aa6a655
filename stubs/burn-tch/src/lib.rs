//! Empty stand-in for burn-tch (see this crate's Cargo.toml): burn's libtorch backend is not used
//! by memrl; memrl's own libtorch backend is `memrl_policies::backend::tch`.
