//! What happens inside a workspace, from the terminal: `coditect events|tasks|locks|agents|
//! query|open WORKSPACE`. Every call goes through the control plane's gateway
//! (`/w/{org}/{name}/…`) with the caller's own credential, so access control decides what
//! each user may see and do, and no one reads an instance's token file.

use coditect_control_plane::client::Client;
use coditect_runtime::shutdown::Shutdown;
use coditect_specs::{Kind, ObjectKey};
use serde_json::{Value, json};

use crate::cli::{EventsArgs, OpenArgs, QueryArgs, TasksArgs, TasksCommand, WorkspaceTarget};
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

/// A workspace reached through the gateway.
#[derive(Debug)]
pub struct Inside {
    client: Client,
    key: ObjectKey,
    token: Option<String>,
}

impl Inside {
    /// Resolves `workspace/NAME` (or `NAME`) through the control plane.
    pub async fn find(remote: &super::Remote, target: &WorkspaceTarget) -> Result<Self, Failure> {
        let connection = remote.connection()?;
        let client = Client::connect(&connection)?;
        let name = target
            .workspace
            .strip_prefix("workspace/")
            .or_else(|| target.workspace.strip_prefix("workspaces/"))
            .unwrap_or(&target.workspace);
        let key = client
            .find(Kind::Workspace, name, target.org.as_deref())
            .await?
            .key();
        Ok(Inside {
            client,
            key,
            token: connection.token,
        })
    }

    /// The control plane's client and the workspace's key.
    pub fn into_parts(self) -> (Client, ObjectKey) {
        (self.client, self.key)
    }

    /// The gateway path of `route` (`/v1/…`) on this workspace.
    fn path(&self, route: &str) -> String {
        format!(
            "/w/{}/{}{route}",
            self.key.organization.as_deref().unwrap_or_default(),
            self.key.name
        )
    }

    async fn get(&self, route: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        Ok(self.client.get_json(&self.path(route), query).await?)
    }

    async fn post(&self, route: &str, body: &Value) -> Result<Value, Failure> {
        Ok(self.client.post_json(&self.path(route), body).await?)
    }

    /// A WebSocket request for `route`, carrying the credential.
    fn ws_request(
        &self,
        route: &str,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, Failure> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let server = self.client.server();
        if server.starts_with("https://") {
            // This binary's WebSocket client is built without TLS.
            return Err(Failure::Refused(format!(
                "following over https is not supported yet ({server}): run without -f, which pages over HTTPS"
            )));
        }
        let base = format!("ws://{}", server.strip_prefix("http://").unwrap_or(server));
        let mut req = format!("{base}{}", self.path(route))
            .into_client_request()
            .map_err(|e| Failure::Refused(format!("{server}: not a WebSocket address: {e}")))?;
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}").parse().map_err(|_| {
                Failure::Refused("the token holds characters a header cannot".into())
            })?;
            req.headers_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

/// `coditect events WORKSPACE [-f] [--since N] [--agent A] [--type T]`.
pub async fn events(
    format: OutputFormat,
    remote: &super::Remote,
    args: &EventsArgs,
) -> Result<(), Failure> {
    // Ctrl-C ends `-f` cleanly from its first printed line on, the stored ones included.
    let shutdown = args.follow.then(Shutdown::install);
    let ws = Inside::find(remote, &args.target).await?;
    let keep = |e: &Value| {
        args.agent.as_deref().is_none_or(|a| e["agent"] == a)
            && args.kind.as_deref().is_none_or(|t| e["type"] == t)
    };
    let mut last = args.since;
    let mut printed: Vec<Value> = Vec::new();
    let mut header = !format.is_structured();
    // The stored events, a page at a time.
    loop {
        let page = ws
            .get(
                "/v1/events",
                &[("since", last.to_string()), ("limit", "1000".into())],
            )
            .await?;
        let events = items(&page).to_vec();
        if events.is_empty() {
            break;
        }
        for e in events {
            last = e["seq"].as_u64().unwrap_or(last);
            if keep(&e) {
                if args.follow || !format.is_structured() {
                    print_event(format, &e, &mut header);
                } else {
                    printed.push(e);
                }
            }
        }
    }
    let Some(mut shutdown) = shutdown else {
        if format.is_structured() {
            print_structured(format, &printed)?;
        } else if header {
            outln!("no events");
        }
        return Ok(());
    };
    follow(&ws, format, last, &keep, &mut header, &mut shutdown).await
}

/// Prints live events after `last`, reconnecting (from the last one printed) when the
/// connection drops, until Ctrl-C.
async fn follow(
    ws: &Inside,
    format: OutputFormat,
    mut last: u64,
    keep: &impl Fn(&Value) -> bool,
    header: &mut bool,
    shutdown: &mut Shutdown,
) -> Result<(), Failure> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut failures = 0u32;
    loop {
        let req = ws.ws_request(&format!("/v1/events/ws?since={last}"))?;
        let connected = tokio::select! {
            c = tokio_tungstenite::connect_async(req) => c,
            () = shutdown.wait() => return Ok(()),
        };
        match connected {
            Ok((mut socket, _)) => {
                failures = 0;
                loop {
                    let frame = tokio::select! {
                        f = socket.next() => f,
                        () = shutdown.wait() => return Ok(()),
                    };
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            let Ok(e) = serde_json::from_str::<Value>(&text) else {
                                continue;
                            };
                            let seq = e["seq"].as_u64().unwrap_or(0);
                            if seq <= last {
                                continue;
                            }
                            last = seq;
                            if keep(&e) {
                                print_event(format, &e, header);
                            }
                        }
                        Some(Ok(_)) => {}
                        None | Some(Err(_)) => break,
                    }
                }
                tracing::warn!(after = last, "event stream dropped; reconnecting");
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, "cannot reach the event stream; retrying");
                }
            }
        }
        let backoff = std::time::Duration::from_millis(200 * u64::from(failures.clamp(1, 10)));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return Ok(()),
        }
    }
}

/// One event: a JSON line for scripts, else a table row (header first).
fn print_event(format: OutputFormat, e: &Value, header: &mut bool) {
    if format.is_structured() {
        outln!("{e}");
        return;
    }
    if std::mem::take(header) {
        outln!(
            "{:>6}  {:<24}  {:<10}  {:<18}  SUMMARY",
            "SEQ",
            "TIME",
            "AGENT",
            "TYPE"
        );
    }
    outln!(
        "{:>6}  {:<24}  {:<10}  {:<18}  {}",
        e["seq"],
        e["ts"].as_str().unwrap_or(""),
        e["agent"].as_str().unwrap_or(""),
        e["type"].as_str().unwrap_or(""),
        summary(e)
    );
}

/// A one-line account of an event's data.
pub fn summary(e: &Value) -> String {
    let d = &e["data"];
    let s = |v: &Value| v.as_str().map(str::to_string);
    let text = match e["type"].as_str().unwrap_or("") {
        "file_edit" => format!(
            "{} {}",
            d["path"].as_str().unwrap_or("?"),
            d["diff"]["summary"].as_str().unwrap_or("")
        ),
        "tool_call" => format!(
            "{}{}",
            d["name"].as_str().or(d["tool"].as_str()).unwrap_or("?"),
            d["ok"]
                .as_bool()
                .map_or("", |ok| if ok { " ok" } else { " failed" })
        ),
        "lock_acquired" | "lock_released" => {
            format!("{} token {}", d["path"].as_str().unwrap_or("?"), d["token"])
        }
        "task_queued" | "task_started" | "task_finished" => format!(
            "task {}{}{}",
            d["id"].as_i64().or(d["task"].as_i64()).unwrap_or_default(),
            s(&d["title"])
                .map(|t| format!(" {t:?}"))
                .unwrap_or_default(),
            s(&d["state"]).map(|t| format!(" {t}")).unwrap_or_default()
        ),
        "agent_message" | "message_sent" => s(&d["text"])
            .or_else(|| s(&d["body"]))
            .unwrap_or_else(|| d.to_string()),
        _ => d.to_string(),
    };
    let one_line = text.replace('\n', " ");
    match one_line.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// `coditect tasks WORKSPACE`, `tasks submit`, `tasks cancel`.
pub async fn tasks(
    format: OutputFormat,
    remote: &super::Remote,
    args: &TasksArgs,
) -> Result<(), Failure> {
    match &args.command {
        Some(TasksCommand::Submit(s)) => {
            let ws = Inside::find(remote, &s.target).await?;
            let mut body = json!({
                "title": s.title,
                "prompt": s.prompt.clone().unwrap_or_else(|| s.title.clone()),
                "priority": s.priority,
            });
            if let Some(agent) = &s.agent {
                body["agent"] = json!(agent);
            }
            if let Some(role) = &s.role {
                body["role"] = json!(role);
            }
            let task = ws.post("/v1/tasks", &body).await?;
            if format.is_structured() {
                return Ok(print_structured(format, &task)?);
            }
            outln!(
                "task/{} queued for {} in {}",
                task["id"],
                task["agent"].as_str().unwrap_or("?"),
                ws.key
            );
            Ok(())
        }
        Some(TasksCommand::Cancel(c)) => {
            let ws = Inside::find(remote, &c.target).await?;
            let task = ws
                .post(&format!("/v1/tasks/{}/cancel", c.id), &json!({}))
                .await?;
            if format.is_structured() {
                return Ok(print_structured(format, &task)?);
            }
            outln!("task/{} {}", c.id, task["state"].as_str().unwrap_or("?"));
            Ok(())
        }
        None => {
            let target = WorkspaceTarget {
                workspace: args.workspace.clone().unwrap_or_default(),
                org: args.org.clone(),
            };
            let ws = Inside::find(remote, &target).await?;
            let mut query = vec![("limit", args.limit.to_string())];
            if let Some(state) = &args.state {
                query.push(("state", state.clone()));
            }
            if let Some(agent) = &args.agent {
                query.push(("agent", agent.clone()));
            }
            let tasks = ws.get("/v1/tasks", &query).await?;
            if format.is_structured() {
                return Ok(print_structured(format, &tasks)?);
            }
            let rows: Vec<Vec<String>> = items(&tasks)
                .iter()
                .map(|t| {
                    vec![
                        t["id"].to_string(),
                        text(&t["agent"]),
                        text(&t["state"]),
                        t["priority"].to_string(),
                        text(&t["title"]),
                    ]
                })
                .collect();
            if rows.is_empty() {
                outln!("no tasks");
            } else {
                print_table(&["ID", "AGENT", "STATE", "PRIORITY", "TITLE"], &rows);
            }
            Ok(())
        }
    }
}

/// `coditect locks WORKSPACE`.
pub async fn locks(
    format: OutputFormat,
    remote: &super::Remote,
    target: &WorkspaceTarget,
) -> Result<(), Failure> {
    let ws = Inside::find(remote, target).await?;
    let held = ws.get("/v1/locks", &[]).await?;
    let waiting = ws.get("/v1/locks/waiters", &[]).await?;
    if format.is_structured() {
        return Ok(print_structured(
            format,
            &json!({"held": held, "waiting": waiting}),
        )?);
    }
    let held = items(&held);
    if held.is_empty() {
        outln!("no locks held");
    } else {
        let rows: Vec<Vec<String>> = held
            .iter()
            .map(|l| {
                vec![
                    text(&l["path"]),
                    text(&l["mode"]),
                    text(&l["holder"]),
                    l["token"].to_string(),
                    text(&l["expires_at"]),
                ]
            })
            .collect();
        print_table(&["PATH", "MODE", "HOLDER", "TOKEN", "EXPIRES"], &rows);
    }
    let waiting = items(&waiting);
    if !waiting.is_empty() {
        outln!();
        let rows: Vec<Vec<String>> = waiting
            .iter()
            .map(|w| {
                vec![
                    text(&w["path"]),
                    text(&w["mode"]),
                    text(&w["holder"]),
                    format!("{}ms", w["waited_ms"]),
                ]
            })
            .collect();
        print_table(&["WAITING FOR", "MODE", "WHO", "WAITED"], &rows);
    }
    Ok(())
}

/// `coditect agents WORKSPACE`.
pub async fn agents(
    format: OutputFormat,
    remote: &super::Remote,
    target: &WorkspaceTarget,
) -> Result<(), Failure> {
    let ws = Inside::find(remote, target).await?;
    let agents = ws.get("/v1/agents", &[]).await?;
    if format.is_structured() {
        return Ok(print_structured(format, &agents)?);
    }
    let rows: Vec<Vec<String>> = items(&agents)
        .iter()
        .map(|a| {
            let task = match &a["task"] {
                Value::Null => "-".to_string(),
                t => format!("{} {}", t["id"], t["title"].as_str().unwrap_or("")),
            };
            let last = match &a["last_event"] {
                Value::Null => "-".to_string(),
                e => format!("{} #{}", e["type"].as_str().unwrap_or(""), e["seq"]),
            };
            vec![
                text(&a["name"]),
                text(&a["provider"]),
                text(&a["state"]),
                task,
                a["queued"].to_string(),
                format!("{}/{}", a["tokens"]["input"], a["tokens"]["output"]),
                a["locks"].as_array().map_or(0, Vec::len).to_string(),
                last,
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "PROVIDER",
            "STATE",
            "TASK",
            "QUEUED",
            "TOKENS IN/OUT",
            "LOCKS",
            "LAST EVENT",
        ],
        &rows,
    );
    Ok(())
}

/// `coditect query WORKSPACE DB "SELECT …"`.
pub async fn query(
    format: OutputFormat,
    remote: &super::Remote,
    args: &QueryArgs,
) -> Result<(), Failure> {
    let ws = Inside::find(remote, &args.target).await?;
    let result = ws
        .post("/v1/query", &json!({"db": args.db, "sql": args.sql}))
        .await?;
    if format.is_structured() {
        return Ok(print_structured(format, &result)?);
    }
    let columns: Vec<String> = items(&result["columns"])
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_uppercase())
        .collect();
    let rows: Vec<Vec<String>> = items(&result["rows"])
        .iter()
        .map(|r| {
            items(r)
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => "NULL".into(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let headers: Vec<&str> = columns.iter().map(String::as_str).collect();
    print_table(&headers, &rows);
    if result["truncated"] == true {
        eprintln!(
            "(only the first {} rows: narrow the query or add LIMIT/OFFSET)",
            rows.len()
        );
    }
    Ok(())
}

/// `coditect open WORKSPACE`: the studio URL. The token rides in the fragment, which the
/// browser never sends to a server; the page moves it into the tab's session storage and
/// takes it out of the address bar.
pub async fn open(
    format: OutputFormat,
    remote: &super::Remote,
    args: &OpenArgs,
) -> Result<(), Failure> {
    let ws = Inside::find(remote, &args.target).await?;
    let org = ws.key.organization.as_deref().unwrap_or_default();
    let mut url = format!("{}/studio/?w={org}/{}", ws.client.server(), ws.key.name);
    if let (false, Some(token)) = (args.no_token, &ws.token) {
        url.push_str(&format!("#token={token}"));
    }
    if format.is_structured() {
        return Ok(print_structured(format, &json!({"url": url}))?);
    }
    outln!("{url}");
    Ok(())
}

/// The elements of a JSON array (none if it is not one).
fn items(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A JSON string's text ("" if it is not one).
fn text(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}
