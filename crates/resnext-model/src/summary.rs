//! Per-stage output shapes and parameter counts (what `torchsummary` printed in the original
//! tutorial), computed from a forward pass of a zero image.

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
    tch::no_grad(|| {
        let x = Tensor::zeros([1, 3, image_size, image_size], (Kind::Float, Device::Cpu));
        let mut h = net.stem(&x, false);
        rows.push(SummaryRow {
            name: "stem (conv1, bn1, maxpool)".into(),
            output_shape: h.size(),
            params: count(&vs, &["conv1.", "bn1."]),
        });
        for (i, name) in STAGES.iter().enumerate() {
            h = net.stage(i, &h, false);
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
        let logits = net.head(&h);
        rows.push(SummaryRow {
            name: "fc".into(),
            output_shape: logits.size(),
            params: count(&vs, &["fc."]),
        });
    });
    let total_params = count(&vs, &[""]);
    Ok(Summary {
        arch: config.arch.to_string(),
        image_size,
        rows,
        total_params,
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
        write!(f, "Total params: {}", thousands(self.total_params))
    }
}
