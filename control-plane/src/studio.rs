//! The browser studio, served at `/studio/` from assets compiled into the binary (plain
//! ES modules under `control-plane/studio/`: no separate server, no node toolchain).
//!
//! The assets hold no data and need no credential; every call the page makes goes to the
//! control plane's API and through the gateway with the user's own token, which the page
//! keeps in the tab's session storage (`coditect open` hands it over in the URL fragment,
//! which browsers never send to a server).

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The assets, by file name, with their content types.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../studio/index.html"),
    ),
    (
        "studio.css",
        "text/css; charset=utf-8",
        include_str!("../studio/studio.css"),
    ),
    (
        "studio.js",
        "text/javascript; charset=utf-8",
        include_str!("../studio/studio.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../studio/api.js"),
    ),
    (
        "streams.js",
        "text/javascript; charset=utf-8",
        include_str!("../studio/streams.js"),
    ),
    (
        "timeline.js",
        "text/javascript; charset=utf-8",
        include_str!("../studio/timeline.js"),
    ),
    (
        "panels.js",
        "text/javascript; charset=utf-8",
        include_str!("../studio/panels.js"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("../studio/chat.js"),
    ),
];

/// The studio's routes.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/studio", get(|| async { Redirect::permanent("/studio/") }))
        .route("/studio/", get(|| async { asset("index.html") }))
        .route(
            "/studio/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

fn asset(file: &str) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'",
                ),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such studio asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_served() {
        for (name, _, body) in ASSETS {
            for import in body
                .lines()
                .filter_map(|l| l.trim().strip_prefix("import "))
                .filter_map(|l| l.split(['"', '\'']).nth(1))
            {
                let file = import.trim_start_matches("./");
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == file),
                    "{name} imports {import}, which is not embedded"
                );
            }
        }
    }
}
