//! Paged answers: a list route answers at most `limit` items as a JSON array, and a page
//! that is not the last says so in its headers, the way paged HTTP APIs do —
//! `X-Has-More: true`, the cursor of the next page (`X-Next-Since` / `X-Next-Before`) and
//! `Link: <…>; rel="next"` — so a client never mistakes a page for the whole list.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Answers `items` (fetched with one more than `limit`, to know whether more exist) as
/// one page. `cursor` is the query parameter that continues after an item (`since`,
/// `before`), `key` the item's value for it, `route` the path with the other parameters.
pub(super) fn page<T: Serialize>(
    mut items: Vec<T>,
    limit: usize,
    cursor: &str,
    key: impl Fn(&T) -> String,
    route: &str,
) -> Response {
    let more = items.len() > limit;
    items.truncate(limit);
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-has-more",
        HeaderValue::from_static(if more { "true" } else { "false" }),
    );
    if let (true, Some(last)) = (more, items.last()) {
        let next = key(last);
        let sep = if route.contains('?') { '&' } else { '?' };
        let link = format!("<{route}{sep}{cursor}={next}&limit={limit}>; rel=\"next\"");
        if let (Ok(next), Ok(link)) = (HeaderValue::from_str(&next), HeaderValue::from_str(&link)) {
            let name = format!("x-next-{cursor}");
            if let Ok(name) = header::HeaderName::try_from(name) {
                headers.insert(name, next);
            }
            headers.insert(header::LINK, link);
        }
    }
    (headers, Json(items)).into_response()
}
