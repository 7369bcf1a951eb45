//! Shared test support: proptest strategies for random prost values, the reference
//! decoding (prost + the staged metadata selection rule), and helpers to compare
//! it with the zero-copy view.

#![allow(dead_code)]

pub(crate) mod reference;
pub(crate) mod strategies;
pub(crate) mod transform;
