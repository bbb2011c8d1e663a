//! What the fault scenarios share: a provider-like load over HTTP ([`load`]) and the checks that
//! nothing it was told is stored went missing or was applied twice ([`check`]). The scenarios run the
//! components in process (`tests/it/faults.rs`) or as processes of their own
//! (`crates/switchboard/tests/rolling_restart.rs`).

pub mod check;
pub mod load;
