//! `resnext serve` as a library: a trained run behind an HTTP API and a web page.
//!
//! - [`Server::bind`] checks a [`ServeConfig`], binds, and loads the model on its own thread
//!   ([`batcher`]): a tch `Tensor` is not `Sync`, so one thread owns the [`Predictor`] and runs
//!   requests as dynamic batches taken from a bounded queue.
//! - Images are decoded and preprocessed off the async threads, inside the request's place in the
//!   queue, with training's limits on sides and pixels and a memory budget a decode checked from
//!   the header ([`ServeConfig::decode`]).
//! - hyper's own answers to unparsable requests are rewritten to JSON ([`wire`]).
//! - [`Server::run`] serves until its shutdown future completes, then drains.
//!
//! Routes ([`routes::Route`]): `POST /v1/predict`, `POST /v1/explain`, `GET /v1/model`,
//! `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json` (the OpenAPI document of
//! them all, derived from the wire types: [`openapi`]) and the page at `GET /`. Errors are
//! `{"error": "<one line>"}`.
//!
//! [`Predictor`]: resnext_infer::Predictor

pub mod api;
pub mod batcher;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod reply;
pub mod routes;
pub mod server;
pub mod state;
pub mod wire;

pub use batcher::{ModelMeta, Readiness};
pub use config::ServeConfig;
pub use error::{ApiError, ServeError};
pub use server::{ReadyWatch, Server};
