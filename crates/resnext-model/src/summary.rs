//! Per-stage output shapes and parameter counts (what `torchsummary` printed in the original
//! tutorial), computed from a forward pass of a zero image, and the multiply-adds of one forward
//! pass (convolutions and the linear head, as torchvision's `GFLOPS` column counts them).

use crate::block::EXPANSION;
use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::network::{ResNeXt, STAGES};
use std::fmt;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// One row of the summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SummaryRow {
    pub name: String,
    pub output_shape: Vec<i64>,
    pub params: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub arch: String,
    pub image_size: i64,
    pub rows: Vec<SummaryRow>,
    /// Trainable parameters (buffers such as running statistics excluded, as PyTorch counts).
    pub total_params: i64,
    /// Multiply-adds of the convolutions and the linear layer for one image.
    pub mult_adds: i64,
}

/// Output side of a convolution or pooling window.
fn out_side(side: i64, kernel: i64, stride: i64, padding: i64) -> i64 {
    (side + 2 * padding - kernel) / stride + 1
}

/// Multiply-adds of one forward pass of one `image_size`² image through the convolutions and the
/// linear head (BatchNorm, ReLU, additions and pooling are not counted, as in torchvision's
/// tables). ResNeXt-50 (32×4d) at 224: 4.23 G; a training step costs about three times this.
pub fn forward_mult_adds(config: &ModelConfig, image_size: i64) -> i64 {
    // conv1 7×7/2, 3 → 64, then max-pool 3×3/2
    let mut side = out_side(image_size, 7, 2, 3);
    let mut macs = side * side * 64 * 3 * 49;
    side = out_side(side, 3, 2, 1);
    let mut in_channels = 64;
    for (i, &blocks) in config.layers.iter().enumerate() {
        let planes = 64 << i;
        let width = (planes * config.width_per_group / 64) * config.groups;
        let out = planes * EXPANSION;
        for b in 0..blocks {
            let stride = if i > 0 && b == 0 { 2 } else { 1 };
            let next = out_side(side, 3, stride, 1);
            macs += side * side * width * in_channels; // conv1 1×1
            macs += next * next * width * (width / config.groups) * 9; // conv2 3×3 grouped
            macs += next * next * out * width; // conv3 1×1
            if stride != 1 || in_channels != out {
                macs += next * next * out * in_channels; // downsample 1×1
            }
            side = next;
            in_channels = out;
        }
    }
    macs + in_channels * config.num_classes
}

/// Parameters whose name starts with one of `prefixes`.
fn count(vs: &VarStore, prefixes: &[&str]) -> i64 {
    vs.variables()
        .iter()
        .filter(|(n, t)| t.requires_grad() && prefixes.iter().any(|p| n.starts_with(p)))
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

/// Builds the model on the CPU and runs one image of `image_size`² through it.
pub fn summarize(config: &ModelConfig, image_size: i64) -> Result<Summary, ModelError> {
    if !(32..=4096).contains(&image_size) {
        return Err(ModelError::InvalidConfig(format!(
            "image size must be between 32 and 4096, got {image_size}"
        )));
    }
    let vs = VarStore::new(Device::Cpu);
    let net = ResNeXt::new(&vs.root(), config)?;
    let mut rows = Vec::new();
    tch::no_grad(|| -> Result<(), ModelError> {
        let x = Tensor::zeros([1, 3, image_size, image_size], (Kind::Float, Device::Cpu));
        let mut h = net.stem(&x, false)?;
        rows.push(SummaryRow {
            name: "stem (conv1, bn1, maxpool)".into(),
            output_shape: h.size(),
            params: count(&vs, &["conv1.", "bn1."]),
        });
        for (i, name) in STAGES.iter().enumerate() {
            h = net.stage(i, &h, false)?;
            let blocks = config.layers[i];
            rows.push(SummaryRow {
                name: format!("{name} ({blocks} blocks)"),
                output_shape: h.size(),
                params: count(&vs, &[&format!("{name}.")]),
            });
        }
        let pooled = h.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        rows.push(SummaryRow {
            name: "avgpool".into(),
            output_shape: pooled.size(),
            params: 0,
        });
        let logits = net.head(&h)?;
        rows.push(SummaryRow {
            name: "fc".into(),
            output_shape: logits.size(),
            params: count(&vs, &["fc."]),
        });
        Ok(())
    })?;
    let total_params = count(&vs, &[""]);
    Ok(Summary {
        arch: config.arch.to_string(),
        image_size,
        rows,
        total_params,
        mult_adds: forward_mult_adds(config, image_size),
    })
}

/// Formats an integer with thousands separators: 25028904 -> "25,028,904".
pub fn thousands(n: i64) -> String {
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} at {}x{}",
            self.arch, self.image_size, self.image_size
        )?;
        writeln!(f, "{:<28} {:<22} {:>14}", "layer", "output shape", "params")?;
        writeln!(f, "{}", "-".repeat(66))?;
        for r in &self.rows {
            let shape = format!("{:?}", r.output_shape);
            writeln!(
                f,
                "{:<28} {:<22} {:>14}",
                r.name,
                shape,
                thousands(r.params)
            )?;
        }
        writeln!(f, "{}", "-".repeat(66))?;
        writeln!(f, "Total params: {}", thousands(self.total_params))?;
        write!(
            f,
            "Forward mult-adds: {:.2} G per image",
            self.mult_adds as f64 / 1e9
        )
    }
}
