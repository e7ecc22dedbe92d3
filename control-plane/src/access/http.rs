//! Access control on the wire: the bearer token of a request, the middleware that turns
//! it into an [`Identity`] for the API's handlers, and the refusals in the API's JSON
//! error shape (401, 403 naming the missing permission, 429 with `Retry-After`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Access;
use super::policy::{Denial, Identity};

/// Why a request was not let in.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// 401: no token, or one that opens nothing.
    Unauthenticated(String),
    /// 403: the token's user may not do this.
    Forbidden(Vec<Denial>),
    /// 429: the token's rate limit; try again after this long.
    RateLimited(Duration),
}

impl From<Denial> for Refusal {
    fn from(d: Denial) -> Self {
        Refusal::Forbidden(vec![d])
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated(reason) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(json!({"error": "unauthorized", "reason": reason})),
            )
                .into_response(),
            Refusal::Forbidden(denials) => {
                let reason = denials
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                let permission = denials.first().map(|d| d.permission.clone());
                (
                    StatusCode::FORBIDDEN,
                    axum::Json(json!({
                        "error": "forbidden",
                        "reason": reason,
                        "permission": permission,
                        "denials": denials,
                    })),
                )
                    .into_response()
            }
            Refusal::RateLimited(wait) => {
                let secs = wait.as_secs_f64().ceil().max(1.0);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, format!("{secs}"))],
                    axum::Json(json!({
                        "error": "rate_limited",
                        "reason": format!("this token's rate limit is reached; try again in {} ms", wait.as_millis().max(1)),
                    })),
                )
                    .into_response()
            }
        }
    }
}

/// The bearer token of a request: `Authorization: Bearer …`, or `?access_token=…` for
/// WebSocket clients that cannot set headers (browsers).
pub fn bearer<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let from_query =
        || query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")));
    from_header.or_else(from_query).filter(|t| !t.is_empty())
}

/// Middleware: lets in only requests whose token names someone (and is under its rate
/// limit), and hands the handlers that [`Identity`].
pub async fn identify(State(access): State<Arc<Access>>, mut req: Request, next: Next) -> Response {
    let who = access.admit(bearer(req.headers(), req.uri().query()));
    match who {
        Ok(who) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// The identity [`identify`] put on a request.
pub type Caller = axum::Extension<Identity>;
