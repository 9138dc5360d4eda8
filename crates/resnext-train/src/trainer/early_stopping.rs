//! Early stopping as its own strategy: the best value of a monitored metric and the epochs since
//! it last improved; the run stops once that count reaches the patience.

use crate::config::StopMetric;
use crate::resume::LoopState;
use resnext_infer::metric::EpochRow;

/// Stop after `patience` epochs without improvement of `metric`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    pub metric: StopMetric,
    /// `None`: never stop early (the count is still kept, so a resumed run agrees).
    pub patience: Option<usize>,
}

impl EarlyStopping {
    /// The monitored value of an epoch, larger is better.
    fn score(&self, row: &EpochRow) -> f64 {
        match self.metric {
            StopMetric::ValAcc => row.val_acc,
            StopMetric::ValLoss => -row.val_loss,
        }
    }

    /// Records an epoch in the loop state (`stop_best`, `stale_epochs`).
    pub fn record(&self, state: &mut LoopState, row: &EpochRow) {
        let score = self.score(row);
        match state.stop_best {
            Some(best) if score <= best => state.stale_epochs += 1,
            _ => {
                state.stop_best = Some(score);
                state.stale_epochs = 0;
            }
        }
    }

    /// True when the run should stop now.
    pub fn should_stop(&self, state: &LoopState) -> bool {
        self.patience.is_some_and(|p| state.stale_epochs >= p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize, val_acc: f64, val_loss: f64) -> EpochRow {
        EpochRow {
            epoch,
            train_loss: 0.0,
            train_acc: 0.0,
            val_loss,
            val_acc,
            lr: 0.0,
            seconds: 0.0,
            images_per_s: 0.0,
            data_wait_s: 0.0,
            allreduce_s: 0.0,
        }
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement_and_never_after_an_improving_one() {
        let es = EarlyStopping {
            metric: StopMetric::ValAcc,
            patience: Some(2),
        };
        let mut s = LoopState::default();
        let mut stopped_at = None;
        for (i, acc) in [0.5, 0.6, 0.6, 0.7, 0.65, 0.7, 0.9].iter().enumerate() {
            es.record(&mut s, &row(i + 1, *acc, 0.0));
            if es.should_stop(&s) {
                stopped_at = Some(i + 1);
                break;
            }
        }
        // 0.7 at epoch 4 is the best; epochs 5 (0.65) and 6 (0.7, not better) are stale.
        assert_eq!(stopped_at, Some(6));
        assert_eq!(s.stop_best, Some(0.7));
    }

    #[test]
    fn val_loss_is_minimised_and_no_patience_never_stops() {
        let es = EarlyStopping {
            metric: StopMetric::ValLoss,
            patience: Some(1),
        };
        let mut s = LoopState::default();
        es.record(&mut s, &row(1, 0.0, 1.0));
        es.record(&mut s, &row(2, 0.0, 0.5));
        assert!(!es.should_stop(&s));
        es.record(&mut s, &row(3, 0.0, 0.6));
        assert!(es.should_stop(&s));
        let never = EarlyStopping {
            metric: StopMetric::ValLoss,
            patience: None,
        };
        assert!(!never.should_stop(&s));
    }
}
