//! The build script of `resnext-model` (an absolute rpath to libtorch), shared.

include!("../resnext-model/build.rs");
