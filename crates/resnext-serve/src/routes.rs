//! The route table: every route's path spelled once. The router (`server.rs`), the metrics'
//! route labels and the OpenAPI document's paths (`#[utoipa::path(path = …)]`) all read it.

/// One route of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Page,
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Predict,
    Explain,
    Model,
}

impl Route {
    pub const ALL: [Route; 8] = [
        Route::Page,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
        Route::OpenApi,
        Route::Predict,
        Route::Explain,
        Route::Model,
    ];

    pub const fn path(self) -> &'static str {
        match self {
            Route::Page => "/",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::Predict => "/v1/predict",
            Route::Explain => "/v1/explain",
            Route::Model => "/v1/model",
        }
    }

    /// Whether an API key, when the server has one, guards the route (`/v1/*`).
    pub fn keyed(self) -> bool {
        self.path().starts_with("/v1/")
    }

    /// The metrics' label of a request path: its route, or `other` (a scanner cannot grow the
    /// label set).
    pub fn label(path: &str) -> &'static str {
        Self::ALL
            .iter()
            .map(|r| r.path())
            .find(|p| *p == path)
            .unwrap_or("other")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(Route::label("/v1/predict"), "/v1/predict");
        assert_eq!(Route::label("/openapi.json"), "/openapi.json");
        assert_eq!(Route::label("/etc/passwd"), "other");
        assert_eq!(Route::label("/v1/predict/"), "other");
        assert!(Route::Model.keyed() && !Route::Healthz.keyed());
    }
}
