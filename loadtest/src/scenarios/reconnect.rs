//! Reconnect: a client whose WebSocket dropped reconnects with `since=<last seq>` through
//! the gateway; measured until the first resumed event arrives.

use std::sync::Arc;

use futures_util::StreamExt;
use indicatif::ProgressBar;

use crate::drive::{Load, drive};
use crate::recorder::Recorder;
use crate::target::Target;

/// Runs the scenario. Each workspace has a few events to resume after (written at setup).
pub async fn reconnect(
    target: &Arc<Target>,
    load: Load,
    rec: Arc<Recorder>,
    progress: &ProgressBar,
) {
    let urls: Vec<String> = target
        .workspaces
        .iter()
        .map(|ws| {
            format!(
                "{}/v1/events/ws?since=1&access_token={}",
                target.base(ws).replacen("http://", "ws://", 1),
                ws.token
            )
        })
        .collect();
    let urls = Arc::new(urls);
    drive(load, rec, progress, move |user, _| {
        let url = urls[user % urls.len()].clone();
        async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| e.to_string())?;
            match socket.next().await {
                Some(Ok(m)) if m.is_text() => Ok(None),
                other => Err(format!("no resumed event: {other:?}")),
            }
        }
    })
    .await;
}
