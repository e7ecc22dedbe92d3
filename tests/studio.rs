//! The browser studio in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver), against a real `coditect up` whose offline
//! agents run the demo: the timeline shows the demo's events in order and a filter narrows
//! it; a task sent from the chat is done and appears live; the locks panel shows a lock
//! while an agent holds it; the files panel shows a written file with its history; after
//! the instance is SIGKILLed and restarted the page reconnects and holds every event
//! exactly once; 10,000 more events render without freezing (time and longest task
//! printed, figures in bench/README.md). Screenshots are kept under
//! `target/tmp/studio-screenshots/`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{ControlPlane, MINUTE, endpoint, ready, tasks_finished, ws_key};
use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        // Ready once it says so.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if line.unwrap().contains("started successfully") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// Runs `script` in the page and reads what it returns.
async fn js<T: serde::de::DeserializeOwned>(client: &Client, script: &str) -> T {
    serde_json::from_value(client.execute(script, vec![]).await.unwrap()).unwrap()
}

/// Runs `script` (which returns a value) until the value is truthy; returns it.
async fn until_js(client: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + MINUTE;
    loop {
        let v: Value = js(client, script).await;
        let truthy = match &v {
            Value::Null | Value::Bool(false) => false,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return v;
        }
        assert!(Instant::now() < deadline, "waited a minute for {what}");
        tokio::task::yield_now().await;
    }
}

/// Every seq the page's event stream holds, newest first.
async fn page_seqs(client: &Client) -> Vec<u64> {
    js(
        client,
        "return window.coditect.session().events.list.map(e => e.seq)",
    )
    .await
}

/// Opens a workspace page from the navigation.
async fn page(client: &Client, name: &str) {
    client
        .find(Locator::Css(&format!("nav a[data-page={name}]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Sends a task for claude from the chat.
async fn send_chat(client: &Client, text: &str) {
    client
        .execute(
            "document.getElementById('chat-to').value = 'agent:claude';
             document.getElementById('chat-text').value = arguments[0];
             document.getElementById('chat-form').requestSubmit();",
            vec![json!(text)],
        )
        .await
        .unwrap();
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("studio-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

async fn last_seq(cp: &ControlPlane) -> u64 {
    let (_, status) = cp
        .gateway("alice", "alice-main")
        .get("/w/acme/alice-main/v1/status")
        .await;
    status["lastSeq"].as_u64().unwrap()
}

async fn all_events(cp: &ControlPlane) -> Vec<Value> {
    let out = cp.cli(&["-o", "json", "events", "alice-main"]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Appends `n` events through the gateway, 16 at a time.
async fn append(cp: &ControlPlane, n: usize) {
    use futures_util::StreamExt;
    let gateway = cp.gateway("alice", "alice-main");
    futures_util::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let gateway = gateway.clone();
            async move {
                let (status, body) = gateway
                    .post(
                        "/w/acme/alice-main/v1/events",
                        &json!({"agent": "load", "type": "agent_message", "data": {"text": format!("load {i}")}}),
                    )
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studio_shows_a_workspace_live_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "alice-main").await;
    let demo: HashSet<i64> = (1..=4).collect();
    tasks_finished(&cp, "alice", "alice-main", &demo).await;
    let driver = Driver::start();
    let client = browser(&driver, &tmp.path().join("chromium")).await;
    let open = cp.cli(&["open", "alice-main"]);
    let url = String::from_utf8(open.stdout).unwrap().trim().to_string();

    // The workspaces list, live from the control plane.
    let (base, fragment) = url.split_once('#').unwrap();
    client
        .goto(&format!("{}/studio/#{fragment}", cp.server))
        .await
        .unwrap();
    client
        .wait()
        .at_most(MINUTE)
        .for_element(Locator::Css(
            r#"#workspaces tr[data-workspace="acme/alice-main"]"#,
        ))
        .await
        .unwrap();
    until_js(
        &client,
        "alice-main's agents in the list",
        r#"return document.querySelector('tr[data-workspace="acme/alice-main"]').textContent.includes('claude')"#,
    )
    .await;
    shot(&client, "workspaces").await;

    // The timeline: the demo's events, newest first, each once.
    client.goto(&format!("{base}#{fragment}")).await.unwrap();
    let newest = last_seq(&cp).await;
    until_js(
        &client,
        "the demo's events",
        &format!("const t = document.getElementById('timeline'); return t && Number(t.dataset.total) >= {newest}"),
    )
    .await;
    let seqs = page_seqs(&client).await;
    assert_eq!(
        seqs,
        (1..=seqs[0]).rev().collect::<Vec<_>>(),
        "every event, newest first, once"
    );
    let rows: Vec<u64> = js(
        &client,
        "return [...document.querySelectorAll('#timeline .ev')].map(r => Number(r.dataset.seq))",
    )
    .await;
    assert!(!rows.is_empty());
    assert!(
        rows.windows(2).all(|w| w[0] > w[1]),
        "rows in order: {rows:?}"
    );
    assert_eq!(rows[0], seqs[0], "the newest first");
    shot(&client, "timeline").await;

    // A filter narrows it: gemini's events only.
    let events = all_events(&cp).await;
    let gemini = events
        .iter()
        .filter(|e| e["agent"] == "gemini" && e["type"] != "tool_result")
        .count();
    js::<Value>(&client, "const s = document.querySelector('select[name=agent]'); s.value = 'gemini'; s.dispatchEvent(new Event('change'));").await;
    let count = until_js(
        &client,
        "the filtered count",
        &format!("const t = document.getElementById('timeline'); return Number(t.dataset.count) === {gemini} && t.dataset.count"),
    )
    .await;
    assert_eq!(count, json!(gemini.to_string()));
    let agents: Vec<String> = js(
        &client,
        "return [...document.querySelectorAll('#timeline .ev')].map(r => r.dataset.agent)",
    )
    .await;
    assert!(
        !agents.is_empty() && agents.iter().all(|a| a == "gemini"),
        "{agents:?}"
    );
    // A file_edit opens its diff.
    js::<Value>(&client, "const s = document.querySelector('select[name=agent]'); s.value = ''; s.dispatchEvent(new Event('change'));
             const t = document.querySelector('select[name=type]'); t.value = 'file_edit'; t.dispatchEvent(new Event('change'));").await;
    client
        .wait()
        .at_most(MINUTE)
        .for_element(Locator::Css("#timeline .ev[data-type=file_edit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let diff = until_js(
        &client,
        "the diff dialog",
        "const d = document.getElementById('diff'); return d.open && document.getElementById('diff-body').textContent",
    )
    .await;
    assert!(
        diff.as_str().unwrap().contains("@@"),
        "a unified diff: {diff}"
    );
    shot(&client, "diff").await;
    client
        .find(Locator::Id("diff-close"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Chat: a task sent to claude is done, and its events appear live on the timeline.
    page(&client, "chat").await;
    client
        .wait()
        .at_most(MINUTE)
        .for_element(Locator::Id("chat-form"))
        .await
        .unwrap();
    send_chat(
        &client,
        "create file demo/from-studio.md with hello from the studio",
    )
    .await;
    let task = until_js(
        &client,
        "the chat's task done",
        "const b = document.querySelector('.bubble[data-task][data-state=done]'); return b && b.dataset.task",
    )
    .await;
    let task: i64 = task.as_str().unwrap().parse().unwrap();
    assert_eq!(
        until_js(
            &client,
            "no pending message",
            "return document.querySelectorAll('.bubble.pending').length === 0 ? 'none' : ''"
        )
        .await,
        json!("none")
    );
    shot(&client, "chat").await;
    until_js(
        &client,
        "the task's end on the live timeline",
        &format!("return window.coditect.session().events.list.some(e => e.type === 'task_finished' && e.data.task === {task} && e.data.state === 'done')"),
    )
    .await;

    // Files: the new file, its content and its history.
    page(&client, "files").await;
    until_js(
        &client,
        "the new file in the tree",
        r#"const f = document.querySelector('#tree li.file[data-path="demo/from-studio.md"]'); if (f) f.click(); return !!f"#,
    )
    .await;
    let content = until_js(
        &client,
        "the file's content and history",
        "const c = document.getElementById('file-content'); return c && document.querySelector('#file-view details[data-seq]') && c.textContent",
    )
    .await;
    assert_eq!(content, json!("hello from the studio"));
    shot(&client, "files").await;

    // Locks: a lease an agent holds shows while held, and goes when released.
    page(&client, "locks").await;
    let gateway = cp.gateway("alice", "alice-main");
    let (status, lease) = gateway
        .post(
            "/w/acme/alice-main/v1/locks",
            &json!({"path": "demo/held.md", "mode": "exclusive", "holder": "claude", "ttl_ms": 600000}),
        )
        .await;
    assert_eq!(status, 200, "{lease}");
    let token = lease["token"].as_u64().unwrap();
    let row = until_js(
        &client,
        "the held lock in the panel",
        r#"const r = document.querySelector('#locks tr[data-path="demo/held.md"]'); return r && [r.dataset.holder, r.dataset.token]"#,
    )
    .await;
    assert_eq!(row, json!(["claude", token.to_string()]));
    shot(&client, "locks").await;
    gateway
        .delete(&format!("/w/acme/alice-main/v1/locks/{token}"))
        .await;
    until_js(
        &client,
        "the released lock gone",
        r#"return !document.querySelector('#locks tr[data-path="demo/held.md"]')"#,
    )
    .await;

    // Kill the instance; the control plane starts it again; the page reconnects and holds
    // every event exactly once, the ones made while it was away included.
    page(&client, "timeline").await;
    let before = cp.client().get(&ws_key("alice-main")).await.unwrap();
    let pid = cp.pid("alice", "alice-main");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    until_js(
        &client,
        "the page to see the connection drop",
        "return window.coditect.reconnects >= 1",
    )
    .await;
    cp.client()
        .watch_until(&ws_key("alice-main"), MINUTE, |r| {
            coditect_control_plane::client::condition_holds(r, "Ready")
                && endpoint(r) != endpoint(&before)
        })
        .await
        .unwrap();
    append(&cp, 50).await;
    let newest = last_seq(&cp).await;
    until_js(
        &client,
        "the events made after the restart",
        &format!("return document.body.dataset.connection === 'open' && window.coditect.session().events.list[0].seq === {newest}"),
    )
    .await;
    let seqs = page_seqs(&client).await;
    assert_eq!(
        seqs,
        (1..=newest).rev().collect::<Vec<_>>(),
        "after the reconnect: every event exactly once"
    );
    let banner: bool = js(&client, "return document.getElementById('banner').hidden").await;
    assert!(banner, "the banner is gone once connected");

    // The control plane itself goes away (its instances keep running): the page shows the
    // banner, and a task sent from the chat meanwhile waits, pending, and goes out once
    // the control plane is back on its address.
    page(&client, "chat").await;
    client
        .wait()
        .at_most(MINUTE)
        .for_element(Locator::Id("chat-form"))
        .await
        .unwrap();
    let drops: u64 = js(&client, "return window.coditect.reconnects").await;
    let listen = cp.server.trim_start_matches("http://").to_string();
    cp.sigkill();
    until_js(
        &client,
        "the banner after the control plane went away",
        &format!("return window.coditect.reconnects > {drops} && !document.getElementById('banner').hidden && document.getElementById('banner').textContent"),
    )
    .await;
    shot(&client, "reconnecting").await;
    send_chat(
        &client,
        "create file demo/while-away.md with sent while away",
    )
    .await;
    let pending = until_js(
        &client,
        "the pending message",
        "const p = document.querySelector('.bubble.pending'); return p && p.textContent",
    )
    .await;
    assert!(
        pending.as_str().unwrap().contains("sent while away"),
        "{pending}"
    );
    let cp = ControlPlane::up_on(&listen, &cp.data.clone(), &[], &[], None);
    until_js(
        &client,
        "the pending task sent and done",
        "return document.querySelectorAll('.bubble.pending').length === 0 && [...document.querySelectorAll('.bubble[data-task][data-state=done]')].some(b => b.textContent.includes('sent while away'))",
    )
    .await;
    let tasks = cp.cli(&["-o", "json", "tasks", "alice-main"]);
    let tasks: Value = serde_json::from_slice(&tasks.stdout).unwrap();
    let sent = tasks
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["title"] == "create file demo/while-away.md with sent while away")
        .count();
    assert_eq!(sent, 1, "sent once: {tasks}");
    let newest = last_seq(&cp).await;
    until_js(
        &client,
        "every event after the control plane's return",
        &format!("return document.body.dataset.connection === 'open' && window.coditect.session().events.list[0].seq === {newest}"),
    )
    .await;
    assert_eq!(
        page_seqs(&client).await,
        (1..=newest).rev().collect::<Vec<_>>(),
        "every event exactly once"
    );
    page(&client, "timeline").await;

    // 10,000 events: the page loads and renders them without freezing.
    append(&cp, 10_000).await;
    let newest = last_seq(&cp).await;
    let started = Instant::now();
    client.refresh().await.unwrap();
    until_js(
        &client,
        "10,000 events on the timeline",
        &format!("const t = document.getElementById('timeline'); return t && Number(t.dataset.total) >= 10000 && window.coditect.session().events.list[0].seq === {newest}"),
    )
    .await;
    let loaded = started.elapsed();
    let longest = js::<Value>(&client, "return window.coditect.longestTaskMs").await;
    let in_dom = js::<Value>(
        &client,
        "return document.querySelectorAll('#timeline .ev').length",
    )
    .await;
    // Scroll to the end: the oldest held event is drawn there, still with few rows; and
    // reaching it pages the older history in.
    let held = page_seqs(&client).await;
    assert_eq!(held.len(), 10_000, "the first page is the newest 10,000");
    let oldest = js::<Value>(&client, "const t = document.getElementById('timeline'); t.scrollTop = t.scrollHeight; t.dispatchEvent(new Event('scroll'));
             const rows = [...t.querySelectorAll('.ev')].map(r => Number(r.dataset.seq)); return Math.min(...rows)").await;
    assert_eq!(
        oldest,
        json!(*held.last().unwrap()),
        "the end of the list is its oldest event"
    );
    until_js(
        &client,
        "the older history paged in",
        "const l = window.coditect.session().events.list; return l[l.length - 1].seq === 1",
    )
    .await;
    assert_eq!(
        page_seqs(&client).await,
        (1..=newest).rev().collect::<Vec<_>>(),
        "paged back to the first event, each once"
    );
    assert!(
        in_dom.as_u64().unwrap() < 120,
        "a virtual list: {in_dom} rows in the page for {} events",
        held.len()
    );
    shot(&client, "timeline-10k").await;
    // The floor, in the same run: the same 10,000 events read off the same WebSocket by a
    // Rust client that renders nothing.
    let floor = {
        use futures_util::StreamExt;
        let started = Instant::now();
        let mut socket = cp.alice_events(newest - 10_000).await;
        while let Some(Ok(frame)) = socket.next().await {
            let Ok(text) = frame.into_text() else {
                continue;
            };
            let e: Value = serde_json::from_str(&text).unwrap();
            if e["seq"].as_u64() == Some(newest) {
                break;
            }
        }
        started.elapsed()
    };
    eprintln!(
        "studio: 10000 events loaded and rendered in {:.0} ms (page refresh to the newest shown), {:.1}x the {:.0} ms a bare WebSocket client takes to read them; longest task {longest} ms (0: none over the 50 ms long-task threshold); {in_dom} rows in the page",
        loaded.as_secs_f64() * 1000.0,
        loaded.as_secs_f64() / floor.as_secs_f64(),
        floor.as_secs_f64() * 1000.0
    );
    client.close().await.unwrap();
}
