//! The routes: `/v1/predict`, `/v1/explain`, `/v1/model`, `/healthz`, `/readyz`, `/metrics` and
//! the page at `/`. Bodies are the image itself, or `multipart/form-data` with a field `file`;
//! no request names a file on the server.

use crate::batcher::{admit, Job, ModelMeta, Readiness};
use crate::error::ApiError;
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use resnext_data::decode::decode_bytes;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The page: HTML, CSS and script in one file, embedded in the binary.
pub const PAGE: &str = include_str!("page/index.html");

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(State(st): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    st.model()
        .map(|_| Json(serde_json::json!({ "status": "ready" })))
}

pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let ready = matches!(*st.readiness.borrow(), Readiness::Ready(_));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        st.metrics.render(ready),
    )
        .into_response()
}

pub async fn model(State(st): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(st.model()?.description.clone()))
}

type Params = Query<Vec<(String, String)>>;

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `top_k`: 1 to the number of classes.
fn top_k(q: &[(String, String)], classes: usize) -> Result<Option<usize>, ApiError> {
    let Some(v) = param(q, "top_k") else {
        return Ok(None);
    };
    match v.parse::<usize>() {
        Ok(k) if (1..=classes).contains(&k) => Ok(Some(k)),
        _ => Err(ApiError::bad_request(format!(
            "top_k `{v}` is not a whole number from 1 to {classes}"
        ))),
    }
}

fn flag(q: &[(String, String)], name: &str) -> Result<bool, ApiError> {
    match param(q, name) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "{name} `{v}` is not true or false"
        ))),
    }
}

/// `class` of `/v1/explain`: a class index or a class name.
fn class(q: &[(String, String)], meta: &ModelMeta) -> Result<Option<usize>, ApiError> {
    let Some(v) = param(q, "class") else {
        return Ok(None);
    };
    let n = meta.classes.len();
    if let Ok(i) = v.parse::<usize>() {
        if i < n {
            return Ok(Some(i));
        }
    }
    if let Some(i) = meta.classes.iter().position(|c| c == v) {
        return Ok(Some(i));
    }
    Err(ApiError::bad_request(format!(
        "class `{v}` is neither a class index (0..{n}) nor a class name"
    )))
}

/// The image bytes of a request: its body, or the `file` field of a multipart form.
async fn image_bytes(st: &AppState, req: Request) -> Result<Bytes, ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        });
    let bytes = if multipart {
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

/// Decodes with the training decode limits, off the async threads.
async fn decode(st: &AppState, bytes: Bytes) -> Result<image::RgbImage, ApiError> {
    let limits = st.config.decode;
    tokio::task::spawn_blocking(move || {
        if image::guess_format(&bytes).is_err() {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body is not an image (JPEG, PNG, BMP, GIF, TIFF or WebP)",
            ));
        }
        decode_bytes(&bytes, limits).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("cannot decode the image: {e}"),
            )
        })
    })
    .await
    .map_err(ApiError::internal)?
}

fn busy(st: &AppState) -> ApiError {
    ApiError::busy(format!(
        "the queue is full ({} requests); retry shortly",
        st.config.queue
    ))
}

fn send(st: &AppState, job: Job) -> Result<(), ApiError> {
    st.jobs
        .try_send(job)
        .map_err(|_| ApiError::busy("the model thread is not taking requests"))
}

async fn answer<T>(rx: oneshot::Receiver<Result<T, ApiError>>) -> Result<T, ApiError> {
    rx.await
        .map_err(|_| ApiError::internal("the model thread stopped before answering"))?
}

pub async fn predict(
    State(st): State<Arc<AppState>>,
    Query(q): Params,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let meta = st.model()?;
    let k = top_k(&q, meta.classes.len())?;
    let tta = flag(&q, "tta")?;
    let bytes = image_bytes(&st, req).await?;
    let permit = admit(&st.metrics, st.config.queue).ok_or_else(|| busy(&st))?;
    let img = decode(&st, bytes).await?;
    let pre = meta.preprocessor.clone();
    let input = tokio::task::spawn_blocking(move || pre.input(&img))
        .await
        .map_err(ApiError::internal)?;
    let (reply, rx) = oneshot::channel();
    send(
        &st,
        Job::Predict {
            input,
            tta,
            reply,
            permit,
        },
    )?;
    let p = answer(rx).await?;
    let mut obj = serde_json::json!({
        "class": p.class,
        "label": meta.classes[p.class],
        "probs": p.probs,
        "logits": p.logits,
    });
    if let Some(k) = k {
        obj["top_k"] = p
            .top_k(k)
            .into_iter()
            .map(|(i, prob)| serde_json::json!({ "class": i, "label": meta.classes[i], "prob": prob }))
            .collect();
    }
    Ok(Json(obj))
}

pub async fn explain(
    State(st): State<Arc<AppState>>,
    Query(q): Params,
    req: Request,
) -> Result<Response, ApiError> {
    let meta = st.model()?;
    let class = class(&q, &meta)?;
    let bytes = image_bytes(&st, req).await?;
    let permit = admit(&st.metrics, st.config.queue).ok_or_else(|| busy(&st))?;
    let img = decode(&st, bytes).await?;
    let (reply, rx) = oneshot::channel();
    let img = Arc::new(img);
    send(
        &st,
        Job::Explain {
            image: img.clone(),
            class,
            reply,
            permit,
        },
    )?;
    let heatmap = answer(rx).await?;
    let explained = heatmap.class;
    let png = tokio::task::spawn_blocking(move || heatmap.overlay_png(&img))
        .await
        .map_err(ApiError::internal)??;
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
