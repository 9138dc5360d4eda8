//! The model thread. A tch `Tensor` is not `Sync`, so the [`Predictor`] lives on one thread of
//! its own, fed by a channel that admission ([`admit`]) keeps short. It takes the first request, then whatever else arrives
//! within `max_wait` (up to `max_batch`), and runs them as one forward pass; while admitted
//! requests are still being decoded it waits up to twice `max_wait` for them.

use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;
use crate::reply::ModelReply;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use image::RgbImage;
use resnext_infer::explain::Heatmap;
use resnext_infer::{InferError, Prediction, Predictor, Preprocessor};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// What the server knows of the loaded model.
#[derive(Debug)]
pub struct ModelMeta {
    /// The eval transform, for the request threads.
    pub preprocessor: Preprocessor,
    /// One name per class (`class i` when the weights came without names).
    pub classes: Vec<String>,
    /// What `GET /v1/model` answers.
    pub description: ModelReply,
}

/// Where the model thread is.
#[derive(Debug, Clone)]
pub enum Readiness {
    Loading,
    Ready(Arc<ModelMeta>),
    Failed(String),
}

/// A place in the queue. The count it holds is released when it is dropped, which is when the
/// work it admits has really ended: it travels into the blocking decode task, then with the job
/// to the model thread, which drops it once it has answered (an explanation gets it back with its
/// heatmap and holds it while the overlay is drawn). A request abandoned by its client does not
/// give it back early: the decode or forward pass it started still runs, and still counts.
#[derive(Debug)]
pub struct Permit {
    metrics: Arc<Metrics>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.metrics.queue_depth.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes a place in a queue of `capacity`, or `None` when it is full.
pub fn admit(metrics: &Arc<Metrics>, capacity: usize) -> Option<Permit> {
    metrics
        .queue_depth
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
            (d < capacity).then_some(d + 1)
        })
        .ok()
        .map(|_| Permit {
            metrics: metrics.clone(),
        })
}

pub enum Job {
    Predict {
        input: Vec<f32>,
        tta: bool,
        reply: oneshot::Sender<Result<Prediction, ApiError>>,
        permit: Permit,
    },
    Explain {
        image: Arc<RgbImage>,
        class: Option<usize>,
        /// The heatmap, with the place in the queue for drawing it.
        reply: oneshot::Sender<(Result<Heatmap, ApiError>, Permit)>,
        permit: Permit,
    },
    /// Finish what is queued, then end the thread.
    Stop,
}

/// How the model thread batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub max_batch: usize,
    pub max_wait: Duration,
}

/// Starts the model thread: it builds the model with `load`, reports on `ready`, then serves
/// jobs until [`Job::Stop`] or until every sender is gone.
pub fn spawn<F, E>(
    load: F,
    policy: BatchPolicy,
    jobs: Receiver<Job>,
    ready: watch::Sender<Readiness>,
    metrics: Arc<Metrics>,
) -> Result<JoinHandle<()>, ServeError>
where
    F: FnOnce() -> Result<Predictor, E> + Send + 'static,
    E: std::fmt::Display,
{
    std::thread::Builder::new()
        .name("resnext-model".into())
        .spawn(move || {
            let predictor = match std::panic::catch_unwind(AssertUnwindSafe(load)) {
                Ok(Ok(p)) => p,
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => format!("{e:#}"),
                        _ => "loading the model panicked".into(),
                    };
                    ready.send_replace(Readiness::Failed(why));
                    return;
                }
            };
            ready.send_replace(Readiness::Ready(Arc::new(meta_of(&predictor))));
            serve_jobs(&predictor, policy, &jobs, &metrics);
        })
        .map_err(ServeError::Thread)
}

fn meta_of(p: &Predictor) -> ModelMeta {
    let classes: Vec<String> = (0..p.num_classes()).map(|i| p.class_name(i)).collect();
    ModelMeta {
        preprocessor: p.preprocessor(),
        description: ModelReply::of(p, classes.clone()),
        classes,
    }
}

fn serve_jobs(p: &Predictor, policy: BatchPolicy, jobs: &Receiver<Job>, metrics: &Metrics) {
    let mut stopping = false;
    while !stopping {
        let first = match jobs.recv() {
            Ok(Job::Stop) | Err(_) => break,
            Ok(j) => j,
        };
        let mut taken = vec![first];
        let start = Instant::now();
        // requests answered together come back together: wait `max_wait` for them, and up to
        // twice that while admitted requests are still being read or decoded
        let deadline = start + policy.max_wait;
        let extended = start + 2 * policy.max_wait;
        while taken.len() < policy.max_batch {
            let on_their_way = metrics.queue_depth.load(Ordering::Acquire) > taken.len();
            let until = if on_their_way { extended } else { deadline };
            match jobs.recv_deadline(until) {
                Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    stopping = true;
                    break;
                }
                Ok(j) => taken.push(j),
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        run_jobs(p, taken, metrics);
    }
    // answer whatever is still queued
    while let Ok(j) = jobs.try_recv() {
        run_jobs(p, vec![j], metrics);
    }
}

fn run_jobs(p: &Predictor, jobs: Vec<Job>, metrics: &Metrics) {
    let mut predicts: [Vec<(Vec<f32>, _, Permit)>; 2] = [Vec::new(), Vec::new()];
    let mut explains = Vec::new();
    for j in jobs {
        match j {
            Job::Predict {
                input,
                tta,
                reply,
                permit,
            } => predicts[usize::from(tta)].push((input, reply, permit)),
            Job::Explain {
                image,
                class,
                reply,
                permit,
            } => explains.push((image, class, reply, permit)),
            Job::Stop => {}
        }
    }
    for (tta, group) in predicts.into_iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        let tta = tta == 1;
        metrics.batch_size.observe(group.len() as f64);
        let (inputs, replies): (Vec<Vec<f32>>, Vec<_>) = group
            .into_iter()
            .map(|(i, r, permit)| (i, (r, permit)))
            .unzip();
        let mut preds =
            match std::panic::catch_unwind(AssertUnwindSafe(|| p.predict_inputs(&inputs, tta))) {
                Ok(r) => r.map(Vec::into_iter).map_err(ApiError::from),
                Err(_) => Err(ApiError::internal("the forward pass panicked")),
            };
        // each place in the queue is given back before the answer goes out, so that a client
        // who has its answer never sees its own request still counted
        for (reply, permit) in replies {
            drop(permit);
            let answer = match &mut preds {
                Ok(preds) => match preds.next() {
                    Some(pred) => Ok(pred),
                    None => continue,
                },
                Err(e) => Err(e.clone()),
            };
            // the requester may have gone (timeout, disconnect): nothing to tell
            reply.send(answer).ok();
        }
    }
    for (image, class, reply, permit) in explains {
        metrics.batch_size.observe(1.0);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| p.explain(&image, class)))
            .unwrap_or_else(|_| Err(InferError::Encode("Grad-CAM panicked".into())));
        // the place goes back with the heatmap (or is dropped here if the requester has gone)
        reply.send((result.map_err(ApiError::from), permit)).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_is_bounded_and_permits_give_their_place_back() {
        let m = Arc::new(Metrics::default());
        let a = admit(&m, 2).expect("first place");
        let b = admit(&m, 2).expect("second place");
        assert!(admit(&m, 2).is_none(), "a queue of 2 is full");
        assert_eq!(m.queue_depth.load(Ordering::Acquire), 2);
        drop(a);
        let c = admit(&m, 2).expect("a place was given back");
        drop((b, c));
        assert_eq!(m.queue_depth.load(Ordering::Acquire), 0);
    }
}
