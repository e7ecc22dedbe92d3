//! `coditect sleep|wake workspace/NAME` and `coditect keepalive workspace/NAME --for 2h`.

use coditect_control_plane::client::Client;
use coditect_specs::{ObjectKey, Resource};
use serde_json::json;

use crate::cli::{KeepaliveArgs, SleepArgs};
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured};

/// A client, and the workspace `workspace/NAME` (or `NAME`) names.
async fn find(
    remote: &super::Remote,
    name: &str,
    org: Option<&str>,
) -> Result<(Client, ObjectKey), Failure> {
    let target = crate::cli::WorkspaceTarget {
        workspace: name.to_string(),
        org: org.map(str::to_string),
    };
    Ok(super::inside::Inside::find(remote, &target)
        .await?
        .into_parts())
}

fn path(key: &ObjectKey, action: &str) -> String {
    format!(
        "/apis/coditect.io/v1/organizations/{}/workspaces/{}/{action}",
        key.organization.as_deref().unwrap_or_default(),
        key.name
    )
}

pub async fn sleep(
    format: OutputFormat,
    remote: &super::Remote,
    args: &SleepArgs,
) -> Result<(), Failure> {
    let (client, key) = find(remote, &args.workspace, args.org.as_deref()).await?;
    let v = client.post_json(&path(&key, "sleep"), &json!({})).await?;
    // Wait until it is asleep (or says what holds it).
    let asleep = client
        .watch_until(&key, args.timeout.to_std(), |r| {
            let s = r.status_json();
            s["phase"] == "Asleep" || s["sleep"]["blocked"].is_string()
        })
        .await?;
    let status = asleep.status_json();
    if format.is_structured() {
        return Ok(print_structured(
            format,
            &json!({"request": v, "status": status}),
        )?);
    }
    match status["sleep"]["blocked"].as_str() {
        Some(why) => {
            outln!("{key} stays awake: {why}");
            Err(Failure::Refused(format!("{key} is not asleep yet")))
        }
        None => {
            outln!("{key} asleep (data kept; a request through the gateway wakes it)");
            Ok(())
        }
    }
}

pub async fn wake(
    format: OutputFormat,
    remote: &super::Remote,
    args: &SleepArgs,
) -> Result<(), Failure> {
    let (client, key) = find(remote, &args.workspace, args.org.as_deref()).await?;
    let v = client.post_json(&path(&key, "wake"), &json!({})).await?;
    let ready = client
        .watch_until(&key, args.timeout.to_std(), |r| {
            coditect_control_plane::client::condition_holds(r, "Ready")
                || r.status_json()["sleep"]["by"] == coditect_control_plane::quota::QUOTA
        })
        .await
        .map_err(|e| Failure::Unavailable(e.to_string()))?;
    if let Some(why) = ready.status_json()["sleep"]["reason"].as_str() {
        return Err(Failure::Refused(format!("{key} stays asleep: {why}")));
    }
    if format.is_structured() {
        return Ok(print_structured(
            format,
            &json!({"request": v, "status": ready.status_json()}),
        )?);
    }
    let endpoint = match &ready {
        Resource::Workspace(w) => w
            .status
            .as_ref()
            .and_then(|s| s.endpoint.clone())
            .unwrap_or_default(),
        _ => String::new(),
    };
    outln!("{key} Ready (instance {endpoint})");
    Ok(())
}

pub async fn keepalive(
    format: OutputFormat,
    remote: &super::Remote,
    args: &KeepaliveArgs,
) -> Result<(), Failure> {
    let (client, key) = find(remote, &args.workspace, args.org.as_deref()).await?;
    let span = args.span.to_std();
    let v = client
        .post_json(
            &format!(
                "/w/{}/{}/v1/keepalive",
                key.organization.as_deref().unwrap_or_default(),
                key.name
            ),
            &json!({"for": format!("{}s", span.as_secs().max(1))}),
        )
        .await?;
    if format.is_structured() {
        return Ok(print_structured(format, &v)?);
    }
    outln!(
        "{key} kept awake until {}",
        v["keepAliveUntil"].as_str().unwrap_or_default()
    );
    Ok(())
}
