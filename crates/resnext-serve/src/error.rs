//! Errors: [`ServeError`] for starting and stopping the server, [`ApiError`] for one request
//! (a status and a one-line JSON body).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use resnext_infer::InferError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the model could not be loaded: {0}")]
    Model(String),
    #[error("the model thread could not start: {0}")]
    Thread(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The body of every error: `{"error": "<one line>"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Why the request failed, in one line.
    pub error: String,
}

/// A failed request: its status and one line saying why.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for `Retry-After` (503).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let message: String = message.into();
        // one line, whatever a decoder or parser said
        let message = message
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            status,
            message,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        match e {
            InferError::ClassOutOfRange { .. } => Self::bad_request(e.to_string()),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}
