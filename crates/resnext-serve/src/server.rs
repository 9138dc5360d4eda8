//! The server: one axum router over shared state in an `Arc`, limits as tower layers, and an
//! accept loop of our own so that slow clients time out (hyper's header-read timeout), hyper's
//! own answers to unparsable requests are JSON too ([`JsonErrors`]), and shutdown drains: after
//! the signal, in-flight requests finish, new ones get 503, then the connections close.

use crate::api;
use crate::batcher::{self, BatchPolicy, Job, ModelMeta, Readiness};
use crate::config::{ServeConfig, MAX_HEAD, MAX_URI};
use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;
use crate::openapi;
use crate::routes::Route;
pub use crate::state::AppState;
use crate::wire::JsonErrors;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use resnext_infer::Predictor;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Waits for the model thread's first word.
#[derive(Debug, Clone)]
pub struct ReadyWatch(watch::Receiver<Readiness>);

impl ReadyWatch {
    /// The model, once loaded, or why it could not be.
    pub async fn wait(&mut self) -> Result<Arc<ModelMeta>, ServeError> {
        let r = self
            .0
            .wait_for(|r| !matches!(r, Readiness::Loading))
            .await
            .map_err(|_| ServeError::Model("the model thread ended".into()))?;
        match &*r {
            Readiness::Ready(m) => Ok(m.clone()),
            Readiness::Failed(e) => Err(ServeError::Model(e.clone())),
            Readiness::Loading => Err(ServeError::Model("still loading".into())),
        }
    }
}

/// A bound server whose model is loading on its own thread.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    router: Router,
    worker: JoinHandle<()>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .field("config", &self.state.config)
            .finish()
    }
}

impl Server {
    /// Checks `config`, binds its address and starts the model thread, which calls `load`.
    /// Requests are answered at once; the model routes say 503 until the model is in.
    pub async fn bind<F, E>(config: ServeConfig, load: F) -> Result<Self, ServeError>
    where
        F: FnOnce() -> Result<Predictor, E> + Send + 'static,
        E: std::fmt::Display,
    {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.addr,
                source,
            })?;
        let metrics = Arc::new(Metrics::default());
        let (ready_tx, ready_rx) = watch::channel(Readiness::Loading);
        // unbounded, so nothing is allocated ahead for `queue`: admission keeps at most `queue`
        // jobs outstanding
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        let worker = batcher::spawn(
            load,
            BatchPolicy {
                max_batch: config.max_batch,
                max_wait: config.max_wait,
            },
            jobs_rx,
            ready_tx,
            metrics.clone(),
        )?;
        let state = Arc::new(AppState {
            config,
            readiness: ready_rx,
            jobs: jobs_tx,
            metrics,
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        });
        Ok(Self {
            router: router(state.clone()),
            listener,
            state,
            worker,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        Ok(self.listener.local_addr()?)
    }

    pub fn ready(&self) -> ReadyWatch {
        ReadyWatch(self.state.readiness.clone())
    }

    /// Serves until `shutdown` completes, then drains (in-flight requests finish within
    /// `drain_timeout`, new ones get 503), closes the connections and stops the model thread.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let state = self.state;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(state.config.header_timeout)
            // a request head larger than this is hyper's 431 (JSON through `JsonErrors`)
            .max_header_size(MAX_HEAD)
            // one buffer a write, so that `JsonErrors` sees hyper's answers whole
            .writev(false);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        let mut drain_until: Option<Instant> = None;
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        stream.set_nodelay(true).ok();
                        let service = TowerToHyperService::new(self.router.clone());
                        let io = TokioIo::new(JsonErrors::new(stream));
                        let conn = http.serve_connection(io, service);
                        let conn = graceful.watch(conn);
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!("connection ended: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        // out of file descriptors and the like: back off, keep serving
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut shutdown, if drain_until.is_none() => {
                    state.draining.store(true, Ordering::SeqCst);
                    drain_until = Some(Instant::now() + state.config.drain_timeout);
                }
                () = tokio::time::sleep(Duration::from_millis(10)), if drain_until.is_some() => {
                    let idle = state.in_flight.load(Ordering::SeqCst) == 0;
                    if idle || drain_until.is_some_and(|t| Instant::now() >= t) {
                        break;
                    }
                }
            }
        }
        drop(self.listener);
        drop(self.router);
        // idle keep-alive connections close now; busy ones were drained above
        if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within 5 s");
        }
        let jobs = state.jobs.clone();
        tokio::task::spawn_blocking(move || {
            // the thread ends on Stop, or when it finds the channel closed
            jobs.send(Job::Stop).ok();
            self.worker.join().ok();
        })
        .await
        .map_err(|e| ServeError::Io(std::io::Error::other(e)))?;
        Ok(())
    }
}

/// Each route's handler (an exhaustive match: a route of the table cannot go unrouted).
fn handler(route: Route) -> MethodRouter<Arc<AppState>> {
    match route {
        Route::Page => get(api::page),
        Route::Healthz => get(api::healthz),
        Route::Readyz => get(api::readyz),
        Route::Metrics => get(api::metrics),
        Route::OpenApi => get(openapi::document),
        Route::Predict => post(api::predict),
        Route::Explain => post(api::explain),
        Route::Model => get(api::model),
    }
}

/// The one router: the route table, then the layers (innermost first).
fn router(state: Arc<AppState>) -> Router {
    let cfg = &state.config;
    let table = |keyed: bool| {
        Route::ALL
            .into_iter()
            .filter(|r| r.keyed() == keyed)
            .fold(Router::new(), |app, r| app.route(r.path(), handler(r)))
    };
    let v1 = table(true).route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    let mut app = table(false)
        .merge(v1)
        .layer(DefaultBodyLimit::max(cfg.max_body))
        .layer(RequestBodyLimitLayer::new(cfg.max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            cfg.request_timeout,
        ));
    if !cfg.cors.is_empty() {
        let allow = if cfg.cors.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            // a list: other origins get no CORS header at all (validated ASCII)
            AllowOrigin::list(
                cfg.cors
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers([header::HeaderName::from_static("x-class")]),
        );
    }
    app.layer(middleware::from_fn_with_state(state.clone(), frame))
        .with_state(state)
}

/// Counts the request in and out, refuses new work while draining and over-long targets, turns
/// every error into `{"error": "<one line>"}` and records the metrics.
async fn frame(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // recorded when dropped: a request whose client goes away before the answer (its future is
    // dropped) is counted as 499, nginx's "client closed request"
    let mut record = Record {
        metrics: &st.metrics,
        route: Route::label(req.uri().path()),
        start: Instant::now(),
        status: None,
    };
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let response = if st.draining.load(Ordering::SeqCst) {
        let mut r = ApiError::busy("the server is shutting down").into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    } else if target > MAX_URI {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("the request target is {target} bytes, over the {MAX_URI}-byte limit"),
        )
        .into_response()
    } else {
        st.in_flight.fetch_add(1, Ordering::SeqCst);
        let _done = InFlight(&st.in_flight);
        let r = next.run(req).await;
        json_error(r, &method, &path, &st.config).await
    };
    record.status = Some(response.status().as_u16());
    response
}

/// Records one request in the metrics when dropped: with its status, or 499 when it never got
/// one because its future was dropped (the client went away).
struct Record<'a> {
    metrics: &'a Metrics,
    route: &'static str,
    start: Instant,
    status: Option<u16>,
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        self.metrics.record(
            self.route,
            self.status.unwrap_or(CLIENT_CLOSED_REQUEST),
            self.start.elapsed().as_secs_f64(),
        );
    }
}

/// The status in the metrics of a request abandoned by its client (nginx's 499).
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Errors from axum and tower (404, 405, 408, 413, extractor rejections) come as plain text:
/// they become the same one-line JSON as ours.
async fn json_error(r: Response, method: &Method, path: &str, cfg: &ServeConfig) -> Response {
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::NOT_FOUND => format!("no route {method} {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        StatusCode::PAYLOAD_TOO_LARGE => api::too_large(cfg.max_body).message,
        StatusCode::REQUEST_TIMEOUT => format!(
            "the request took longer than {} s",
            cfg.request_timeout.as_secs_f64()
        ),
        _ if !text.is_empty() => text,
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let mut out = ApiError::new(status, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// With an API key, `/v1/*` needs `Authorization: Bearer <key>`.
async fn authorize(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(key) = &st.config.api_key else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), key.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("the bearer token is wrong"),
        None => unauthorized("this server needs `Authorization: Bearer <key>`"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// Equal bytes, compared in a time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_exactly() {
        assert!(constant_time_eq(b"secret-key", b"secret-key"));
        assert!(!constant_time_eq(b"secret-key", b"secret-kez"));
        assert!(!constant_time_eq(b"secret-key", b"secret-key2"));
    }
}
