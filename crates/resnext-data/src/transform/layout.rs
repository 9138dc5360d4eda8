//! The memory layout of an image in a batch.

use serde::{Deserialize, Serialize};

/// Memory layout of an image in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Channels first, as PyTorch's default.
    #[default]
    Nchw,
    /// Channels last.
    Nhwc,
}
