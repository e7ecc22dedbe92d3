//! A Kubernetes API server for tests (feature `testkit`): kube's `tower-test` mock pair,
//! each request the client sends handed to a function that answers it as the API server
//! would. The operator's, the gateway's and the auto-sleeper's tests share it; what each
//! answers (its objects, its reviews) is the test's.

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

/// One request the client sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `GET`, `POST`, `PATCH`…
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string (`fieldManager=coditect&force=true`).
    pub query: String,
    /// The body's content type (`application/apply-patch+yaml` for server-side apply).
    pub content_type: String,
    /// The body, as JSON (`null` when there is none).
    pub body: Value,
}

impl Sent {
    /// Whether it is a server-side apply by field manager `coditect`, forced.
    pub fn is_apply(&self) -> bool {
        self.method == "PATCH"
            && self.content_type == "application/apply-patch+yaml"
            && self.query.contains("fieldManager=coditect")
            && self.query.contains("force=true")
    }
}

/// A `Status` failure body, as the API server sends with `code`.
pub fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

/// A client whose every request is answered by `answer` (status code, JSON body).
///
/// # Panics
/// When a request's body cannot be read or an answer cannot be built (a broken test).
#[allow(clippy::expect_used)] // test support: a panic is the failure report
pub fn api_server<F>(mut answer: F) -> kube::Client
where
    F: FnMut(&Sent) -> (u16, Value) + Send + 'static,
{
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or("").to_string();
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .expect("a request body");
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let sent = Sent {
                method,
                path,
                query,
                content_type,
                body,
            };
            let (code, body) = answer(&sent);
            send.send_response(
                Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string().into_bytes()))
                    .expect("a response"),
            );
        }
    });
    kube::Client::new(service, "default")
}
