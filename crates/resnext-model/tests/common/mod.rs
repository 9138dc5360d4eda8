//! Finding `../shared` through `RESNEXT_SHARED`: when the variable is set, missing files are a
//! failure; without it the test is skipped with a printed reason.

pub use resnext_testkit::shared;
