//! Fixtures: the small ones committed under tests/fixtures ([`fixture`]), and `../shared`
//! through `RESNEXT_SHARED` ([`shared`]: a missing file is a failure when the variable is set;
//! without it the test is skipped and `cargo xtask test` counts it).
#![allow(unused_imports)]

pub use resnext_testkit::{fixture, shared};
