//! What every handler shares ([`AppState`]): the config, the model's readiness, the job queue,
//! the metrics and the drain state. Its own file, so that the handlers (`api.rs`) and the server
//! that routes to them (`server.rs`) both depend on it and not on each other.

use crate::batcher::{Job, ModelMeta, Readiness};
use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use axum::http::StatusCode;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use tokio::sync::watch;

/// What every handler shares.
pub struct AppState {
    pub config: ServeConfig,
    pub readiness: watch::Receiver<Readiness>,
    pub jobs: crossbeam_channel::Sender<Job>,
    pub metrics: Arc<Metrics>,
    pub(crate) draining: AtomicBool,
    pub(crate) in_flight: AtomicUsize,
}

impl AppState {
    /// The loaded model, or 503 while it loads.
    pub fn model(&self) -> Result<Arc<ModelMeta>, ApiError> {
        match &*self.readiness.borrow() {
            Readiness::Ready(m) => Ok(m.clone()),
            Readiness::Loading => Err(ApiError::busy("the model is still loading")),
            Readiness::Failed(e) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the model failed to load: {e}"),
            )),
        }
    }
}
