//! A running mean of loss and accuracy over the batches of an epoch.

/// A running mean of loss and accuracy over batches.
#[derive(Debug, Clone, Default)]
pub struct Running {
    pub loss_sum: f64,
    pub correct: f64,
    pub count: usize,
}

impl Running {
    pub fn add(&mut self, mean_loss: f64, correct: f64, n: usize) {
        self.loss_sum += mean_loss * n as f64;
        self.correct += correct;
        self.count += n;
    }
    pub fn loss(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.loss_sum / self.count as f64
        }
    }
    pub fn acc(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.correct / self.count as f64
        }
    }
}
