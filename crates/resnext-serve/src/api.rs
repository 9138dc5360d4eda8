//! The routes: `/v1/predict`, `/v1/explain`, `/v1/model`, `/healthz`, `/readyz`, `/metrics` and
//! the page at `/`. Bodies are the image itself, or `multipart/form-data` with a field `file`
//! (other `multipart/*` types are 415); no request names a file on the server. Query strings
//! are typed structs: an unknown, repeated or empty parameter is a 400 naming it. Replies are the
//! types of [`crate::reply`]; each handler's `#[utoipa::path]` documents it for `/openapi.json`.

use crate::batcher::{admit, Job, ModelMeta, Readiness};
use crate::error::{ApiError, ErrorBody};
use crate::reply::{Health, ModelReply, PredictReply, Ranked, Status};
use crate::routes::Route;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use resnext_data::decode::{decode_bytes, DecodeLimits};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::oneshot;
use utoipa::{IntoParams, IntoResponses, ToSchema};

/// The page: HTML, CSS and script in one file, embedded in the binary.
pub const PAGE: &str = include_str!("page/index.html");

/// The web page.
#[utoipa::path(get, path = Route::Page.path(), responses((status = 200, body = String,
    description = "the page: HTML, CSS and script in one file", content_type = "text/html")))]
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// Liveness: 200 while the process answers.
#[utoipa::path(get, path = Route::Healthz.path(),
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: Health::Ok })
}

/// Readiness: 200 once the model is loaded.
#[utoipa::path(get, path = Route::Readyz.path(), responses(
    (status = 200, description = "`{\"status\": \"ready\"}`", body = Status),
    (status = 503, description = "the model is loading, or failed to load", body = ErrorBody)))]
pub async fn readyz(State(st): State<Arc<AppState>>) -> Result<Json<Status>, ApiError> {
    st.model()?;
    Ok(Json(Status {
        status: Health::Ready,
    }))
}

/// Prometheus counters.
#[utoipa::path(get, path = Route::Metrics.path(), responses((status = 200,
    description = "the text exposition format 0.0.4", content_type = "text/plain", body = String)))]
pub async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let ready = matches!(*st.readiness.borrow(), Readiness::Ready(_));
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    (
        [(header::CONTENT_TYPE, content_type)],
        st.metrics.render(ready),
    )
}

/// The model: its sidecar without server paths, and how the server runs it.
#[utoipa::path(get, path = Route::Model.path(), security((), ("api_key" = [])), responses(
    (status = 200, description = "the model", body = ModelReply),
    (status = 401, description = "with an API key: no or a wrong bearer token", body = ErrorBody),
    (status = 503, description = "the model is loading, or failed to load", body = ErrorBody)))]
pub async fn model(State(st): State<Arc<AppState>>) -> Result<Json<ModelReply>, ApiError> {
    Ok(Json(st.model()?.description.clone()))
}

/// The query of `/v1/predict`: `top_k` (1 to the number of classes) and `tta` (a boolean).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PredictQuery {
    /// Also answer the K most likely classes (1 to the number of classes).
    #[param(value_type = Option<u32>, minimum = 1)]
    pub top_k: Option<String>,
    /// Average over the image and its mirror: `true`/`1` or `false`/`0` (the default).
    #[param(value_type = Option<bool>)]
    pub tta: Option<String>,
}

/// The query of `/v1/explain`: `class`, an index or a name.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// The class to explain, an index or a name (default: the predicted one).
    pub class: Option<String>,
}

/// A `multipart/form-data` body: the image in a field `file`, and nothing else.
#[derive(ToSchema)]
pub struct Upload {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// The errors of the routes that take an image. Each is `{"error": "<one line>"}`.
#[derive(IntoResponses)]
pub enum ImageErrors {
    /// An empty body, a multipart form without exactly one field `file`, a bad value or an
    /// unknown, repeated or empty query parameter.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// With an API key: no or a wrong bearer token (`WWW-Authenticate: Bearer`).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The request took longer than `--timeout-s`.
    #[response(status = 408)]
    Timeout(ErrorBody),
    /// The body is over `--max-body`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not an image, or a multipart type other than `form-data`.
    #[response(status = 415)]
    Unsupported(ErrorBody),
    /// The image cannot be decoded, or is over the decode limits.
    #[response(status = 422)]
    Undecodable(ErrorBody),
    /// The model failed.
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The model is loading, the queue is full or the server is shutting down
    /// (`Retry-After: 1` when it may pass).
    #[response(status = 503)]
    Busy(ErrorBody),
}

/// A route's query string as its typed struct: an unknown or repeated parameter is a 400 naming
/// it. Values stay strings here, so that each is refused with its own name and range below.
pub fn parse_query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| {
            let text = e.body_text();
            let e = text
                .strip_prefix("Failed to deserialize query string: ")
                .unwrap_or(&text);
            // serde's own words, after serde_path_to_error's `name: ` prefix
            let after = |phrase: &str| e.find(phrase).map(|i| &e[i + phrase.len()..]);
            let message = if let Some(rest) = after("unknown field ") {
                format!("unknown query parameter {rest}")
            } else if let Some(rest) = after("duplicate field ") {
                format!("query parameter {rest} is given more than once")
            } else {
                format!("bad query string: {e}")
            };
            ApiError::bad_request(message)
        })
}

/// `top_k`: 1 to the number of classes.
fn top_k(v: Option<&str>, classes: usize) -> Result<Option<usize>, ApiError> {
    v.map(|v| match v.parse::<usize>() {
        Ok(k) if (1..=classes).contains(&k) && !v.starts_with('+') => Ok(k),
        _ => Err(ApiError::bad_request(format!(
            "top_k `{v}` is not a whole number from 1 to {classes}"
        ))),
    })
    .transpose()
}

/// A boolean parameter: `true`/`1` or `false`/`0`; absent is false, and an empty value (`tta=`,
/// `?tta`) is refused rather than guessed.
fn flag(v: Option<&str>, name: &str) -> Result<bool, ApiError> {
    match v {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "{name} `{v}` is not true, false, 1 or 0"
        ))),
    }
}

/// `class` of `/v1/explain`: a class index or a class name.
fn class(v: Option<&str>, meta: &ModelMeta) -> Result<Option<usize>, ApiError> {
    let n = meta.classes.len();
    v.map(|v| {
        v.parse::<usize>()
            .ok()
            .filter(|&i| i < n && !v.starts_with('+'))
            .or_else(|| meta.classes.iter().position(|c| c == v))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "class `{v}` is neither a class index (0..{n}) nor a class name"
                ))
            })
    })
    .transpose()
}

/// The image bytes of a request: its body, or the `file` field of a multipart form.
async fn image_bytes(st: &AppState, req: Request) -> Result<Bytes, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map_or(String::new(), |v| {
            String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase()
        });
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if media_type.starts_with("multipart/") && media_type != "multipart/form-data" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type `{media_type}` is not supported: send the image as the body \
                 itself (image/*, application/octet-stream), or as multipart/form-data with a \
                 field `file`"
            ),
        ));
    }
    let bytes = if media_type == "multipart/form-data" {
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|e| rejected(st, e.status(), e.body_text()))?;
        let mut file = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| rejected(st, e.status(), e.body_text()))?
        {
            let name = field.name().unwrap_or("").to_owned();
            if name != "file" {
                return Err(ApiError::bad_request(format!(
                    "multipart field `{name}` is not expected: send the image in a field named `file`"
                )));
            }
            if file.is_some() {
                return Err(ApiError::bad_request(
                    "more than one `file` field: send one image per request",
                ));
            }
            file = Some(
                field
                    .bytes()
                    .await
                    .map_err(|e| rejected(st, e.status(), e.body_text()))?,
            );
        }
        file.ok_or_else(|| {
            ApiError::bad_request("the multipart form has no field `file` with the image")
        })?
    } else {
        Bytes::from_request(req, &())
            .await
            .map_err(|e| rejected(st, e.status(), e.body_text()))?
    };
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "empty body: send an image (raw, or as the multipart field `file`)",
        ));
    }
    if bytes.len() > st.config.max_body {
        return Err(too_large(st.config.max_body));
    }
    Ok(bytes)
}

/// An extractor's rejection, with our wording for an over-long body.
fn rejected(st: &AppState, status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(st.config.max_body)
    } else {
        ApiError::new(status, text)
    }
}

pub fn too_large(max_body: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over the {max_body}-byte limit (--max-body)"),
    )
}

/// Decodes with the decode limits. Runs on the blocking pool, inside the request's place in the
/// queue.
fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<image::RgbImage, ApiError> {
    if image::guess_format(bytes).is_err() {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body is not an image (JPEG, PNG, BMP, GIF, TIFF or WebP)",
        ));
    }
    decode_bytes(bytes, limits).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("cannot decode the image: {e}"),
        )
    })
}

/// Runs `work` on the blocking pool. Whatever it owns (the place in the queue) lives until it
/// ends, even when the request is abandoned meanwhile.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}

fn busy(st: &AppState) -> ApiError {
    ApiError::busy(format!(
        "the queue is full ({} requests); retry shortly",
        st.config.queue
    ))
}

/// Queues the job that `job` makes with its reply channel, and waits for the model thread's answer.
async fn ask<T>(st: &AppState, job: impl FnOnce(oneshot::Sender<T>) -> Job) -> Result<T, ApiError> {
    let (reply, rx) = oneshot::channel();
    st.jobs
        .try_send(job(reply))
        .map_err(|_| ApiError::busy("the model thread is not taking requests"))?;
    rx.await
        .map_err(|_| ApiError::internal("the model thread stopped before answering"))
}

/// Classifies an image.
#[utoipa::path(post, path = Route::Predict.path(), params(PredictQuery),
    request_body(description = "the image itself (any content type but `multipart/*`), or a \
        `multipart/form-data` form with the image in a field `file`",
        content((Upload = "multipart/form-data"), ("image/*"), ("application/octet-stream"))),
    security((), ("api_key" = [])),
    responses((status = 200, description = "the prediction", body = PredictReply), ImageErrors))]
pub async fn predict(
    State(st): State<Arc<AppState>>,
    req: Request,
) -> Result<Json<PredictReply>, ApiError> {
    let meta = st.model()?;
    let q: PredictQuery = parse_query(req.uri())?;
    let k = top_k(q.top_k.as_deref(), meta.classes.len())?;
    let tta = flag(q.tta.as_deref(), "tta")?;
    let bytes = image_bytes(&st, req).await?;
    // the place is taken before decoding and moves into the decode task: work that runs counts
    let permit = admit(&st.metrics, st.config.queue).ok_or_else(|| busy(&st))?;
    let limits = st.config.decode;
    let pre = meta.preprocessor.clone();
    let (input, permit) = blocking(move || {
        let img = decode(&bytes, limits)?;
        drop(bytes);
        Ok((pre.input(&img), permit))
    })
    .await?;
    let p = ask(&st, |reply| Job::Predict {
        input,
        tta,
        reply,
        permit,
    })
    .await??;
    let label = |i: usize| meta.classes.get(i).cloned().unwrap_or_default();
    let top_k = k.map(|k| {
        p.top_k(k)
            .into_iter()
            .map(|(class, prob)| Ranked {
                class,
                label: label(class),
                prob,
            })
            .collect()
    });
    let decision = meta
        .description
        .trained
        .as_ref()
        .and_then(|t| t.operating_point.as_ref())
        .map(|op| op.decide(&p.logits, &meta.classes));
    Ok(Json(PredictReply {
        class: p.class,
        label: label(p.class),
        probs: p.probs,
        logits: p.logits,
        top_k,
        decision,
    }))
}

/// Explains a class with Grad-CAM: the overlay on the photo, as a PNG.
#[utoipa::path(post, path = Route::Explain.path(), params(ExplainQuery),
    request_body(description = "the image itself (any content type but `multipart/*`), or a \
        `multipart/form-data` form with the image in a field `file`",
        content((Upload = "multipart/form-data"), ("image/*"), ("application/octet-stream"))),
    security((), ("api_key" = [])),
    responses((status = 200, content_type = "image/png",
        description = "the overlay, at most 1024 pixels on its longest side",
        headers(("X-Class" = usize, description = "the class explained"))), ImageErrors))]
pub async fn explain(State(st): State<Arc<AppState>>, req: Request) -> Result<Response, ApiError> {
    let meta = st.model()?;
    let q: ExplainQuery = parse_query(req.uri())?;
    let class = class(q.class.as_deref(), &meta)?;
    let bytes = image_bytes(&st, req).await?;
    let permit = admit(&st.metrics, st.config.queue).ok_or_else(|| busy(&st))?;
    let limits = st.config.decode;
    let (img, permit) = blocking(move || Ok((Arc::new(decode(&bytes, limits)?), permit))).await?;
    let (heatmap, permit) = ask(&st, |reply| Job::Explain {
        image: img.clone(),
        class,
        reply,
        permit,
    })
    .await?;
    let heatmap = heatmap?;
    let explained = heatmap.class;
    // drawn at most MAX_OVERLAY_SIDE pixels a side, still inside the request's place
    let png = blocking(move || {
        let png = heatmap.overlay_png(&img).map_err(ApiError::from);
        drop(permit);
        png
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (
                header::HeaderName::from_static("x-class"),
                HeaderValue::from(explained),
            ),
        ],
        png,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predict_query(q: &str) -> Result<PredictQuery, String> {
        let uri: Uri = format!("/v1/predict?{q}").parse().unwrap();
        parse_query(&uri).map_err(|e| {
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            e.message
        })
    }

    #[test]
    fn queries_are_typed_unknown_repeated_and_empty_parameters_are_named() {
        let q = predict_query("top_k=2&tta=true").unwrap();
        assert_eq!(
            (q.top_k.as_deref(), q.tta.as_deref()),
            (Some("2"), Some("true"))
        );
        let q = predict_query("").unwrap();
        assert!(q.top_k.is_none() && q.tta.is_none());

        let e = predict_query("topk=2").unwrap_err();
        assert!(e.contains("unknown query parameter `topk`"), "{e}");
        assert!(e.contains("`top_k`") && e.contains("`tta`"), "{e}");
        let e = predict_query("top_k=1&top_k=2").unwrap_err();
        assert!(e.contains("`top_k` is given more than once"), "{e}");
        let e = predict_query("tta=true&tta=false").unwrap_err();
        assert!(e.contains("`tta` is given more than once"), "{e}");

        // values: strict booleans, an empty one is refused, top_k in range
        for v in ["true", "1"] {
            assert!(flag(Some(v), "tta").unwrap());
        }
        for v in ["false", "0"] {
            assert!(!flag(Some(v), "tta").unwrap());
        }
        assert!(!flag(None, "tta").unwrap());
        for v in ["", "yes", "TRUE", " true"] {
            let e = flag(Some(v), "tta").unwrap_err().message;
            assert!(e.starts_with("tta `"), "{v:?}: {e}");
        }
        let q = predict_query("tta").unwrap();
        assert!(flag(q.tta.as_deref(), "tta").is_err(), "`?tta` is empty");
        assert_eq!(top_k(Some("3"), 4).unwrap(), Some(3));
        for v in ["", "0", "5", "+2", "two", "-1"] {
            let e = top_k(Some(v), 4).unwrap_err().message;
            assert!(e.starts_with("top_k `"), "{v:?}: {e}");
        }
        let uri: Uri = "/v1/explain?class=1&klass=2".parse().unwrap();
        let e = parse_query::<ExplainQuery>(&uri).unwrap_err().message;
        assert!(e.contains("unknown query parameter `klass`"), "{e}");
    }
}
