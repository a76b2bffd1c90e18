//! The live chart page at `/`: `web/index.html`, `web/app.js` and the
//! vendored lightweight-charts build (`web/vendor/`, refreshed by
//! `web/vendor.sh`), compiled into the binary so the service needs no
//! files and the page no CDN.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::AppState;

/// The page.
pub const INDEX_HTML: &str = include_str!("../web/index.html");
/// The page's script.
pub const APP_JS: &str = include_str!("../web/app.js");
/// lightweight-charts' standalone production build (Apache-2.0).
pub const CHARTS_JS: &str =
    include_str!("../web/vendor/lightweight-charts.standalone.production.js");

/// Routes of the page and its scripts.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    INDEX_HTML,
                )
                    .into_response()
            }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "no-cache"),
                    ],
                    APP_JS,
                )
                    .into_response()
            }),
        )
        .route(
            "/vendor/lightweight-charts.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    CHARTS_JS,
                )
                    .into_response()
            }),
        )
}
