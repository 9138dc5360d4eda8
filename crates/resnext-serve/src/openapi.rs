//! `GET /openapi.json`: the OpenAPI 3.1 document, derived by `utoipa` from the handlers'
//! `#[utoipa::path]` attributes and the wire types (queries, replies, [`ErrorBody`]), with the
//! API key as a bearer scheme.

use crate::api;
use crate::error::ErrorBody;
use crate::routes::Route;
use axum::Json;
use std::sync::LazyLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "resnext serve", description = "A trained resnext-rs run behind an HTTP API. \
        Every error is `{\"error\": \"<one line>\"}` with its status; a route the server does not \
        have is 404, a wrong method 405, a request target over 8 KiB 414."),
    paths(api::page, api::healthz, api::readyz, api::metrics, document, api::predict,
        api::explain, api::model),
    components(schemas(ErrorBody)),
    modifiers(&ApiKey)
)]
pub struct ApiDoc;

/// `api_key`: with `--api-key`, `/v1/*` needs `Authorization: Bearer <key>`.
struct ApiKey;

impl Modify for ApiKey {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("only when the server runs with `--api-key`"))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// This document.
#[utoipa::path(get, path = Route::OpenApi.path(), responses((status = 200,
    description = "the OpenAPI 3.1 document of this server", body = Object)))]
pub async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(&DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_has_every_route_and_only_those() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
        let mut routes: Vec<&str> = Route::ALL.iter().map(|r| r.path()).collect();
        documented.sort_unstable();
        routes.sort_unstable();
        assert_eq!(documented, routes);
        for r in Route::ALL {
            let keyed = paths[r.path()]
                .as_object()
                .unwrap()
                .values()
                .all(|op| op["security"][1]["api_key"].is_array());
            assert_eq!(keyed, r.keyed(), "{}", r.path());
        }
    }
}
