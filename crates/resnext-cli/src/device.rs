//! `--device cpu|cuda|cuda:N|auto`, validated into a `tch::Device`.

use anyhow::Result;
use tch::Device;

pub fn parse_device(s: &str) -> Result<Device> {
    Ok(resnext_train::trainer::parse_device(s)?)
}
