//! Test-only support code (compiled under `cfg(test)` or the `shuttle` feature).

#[cfg(feature = "shuttle")]
pub(crate) mod shuttle_queue;
