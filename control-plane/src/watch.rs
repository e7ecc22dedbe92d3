//! Watch: the store's changes of one kind as a newline-delimited JSON stream, starting
//! after a resource version. Replays the change log first, then follows live changes,
//! skipping any already replayed (the same rule as the workspace event tail). Only
//! objects the caller may read are sent, checked against the roles of the moment.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use coditect_specs::{Kind, Resource};

use crate::selector::LabelSelector;
use crate::store::{Change, Store};

/// Whether the caller may see an object (access control's read check).
pub type Visible = Box<dyn Fn(&Resource) -> bool + Send + Sync>;

struct Filter {
    kind: Kind,
    org: Option<String>,
    selector: LabelSelector,
    visible: Visible,
}

fn wanted(c: &Change, f: &Filter) -> bool {
    let Ok(r) = Resource::from_trusted_json(c.object.clone()) else {
        return false;
    };
    let (kind, org, selector) = (f.kind, f.org.as_deref(), &f.selector);
    (f.visible)(&r)
        && r.kind() == kind
        && org.is_none_or(|o| {
            r.metadata().organization.as_deref() == Some(o)
                || (kind == Kind::Organization && r.name() == o)
        })
        && selector.matches(&r.metadata().labels)
}

/// The streaming response of a watch from `from` (exclusive).
pub fn stream(
    store: Arc<Store>,
    kind: Kind,
    org: Option<String>,
    selector: LabelSelector,
    from: u64,
    visible: Visible,
) -> Response {
    let filter = Filter {
        kind,
        org,
        selector,
        visible,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(256);
    tokio::spawn(async move {
        let mut live = store.subscribe();
        let mut last = from;
        let backlog = store.changes_since(from).unwrap_or_default();
        for c in backlog {
            last = c.resource_version;
            if wanted(&c, &filter) && tx.send(Ok(line(&c))).await.is_err() {
                return;
            }
        }
        loop {
            match live.recv().await {
                Ok(c) if c.resource_version <= last => {}
                Ok(c) => {
                    last = c.resource_version;
                    if wanted(&c, &filter) && tx.send(Ok(line(&c))).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    for c in store.changes_since(last).unwrap_or_default() {
                        last = c.resource_version;
                        if wanted(&c, &filter) && tx.send(Ok(line(&c))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

fn line(c: &Change) -> String {
    let mut s = serde_json::to_string(c).unwrap_or_default();
    s.push('\n');
    s
}
