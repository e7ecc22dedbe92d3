//! The commands for what happens inside a workspace, against a real `coditect up` with the
//! example manifests (alice-main's offline agents run the demo): `events` (with filters and
//! `-f`), `tasks` (list, submit, cancel), `locks`, `agents`, `query`, `open`. Each goes
//! through the gateway with the caller's credential.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{ControlPlane, ready, tasks_finished};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json_out(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_commands_show_and_drive_what_happens_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "alice-main").await;

    // tasks submit → the agent runs it; tasks lists it done.
    let task = json_out(&cp.cli(&[
        "-o",
        "json",
        "tasks",
        "submit",
        "alice-main",
        "create file demo/cli-note.md with note from the cli",
        "--agent",
        "claude",
    ]));
    let id = task["id"].as_i64().unwrap();
    assert_eq!(task["agent"], "claude");
    let text = stdout(&cp.cli(&[
        "tasks",
        "submit",
        "alice-main",
        "tell gemini: hello",
        "--role",
        "lead",
    ]));
    assert!(
        text.starts_with("task/") && text.contains("queued for claude"),
        "{text}"
    );
    let ended = tasks_finished(&cp, "alice", "alice-main", &HashSet::from([id])).await;
    assert_eq!(
        ended,
        vec![(id, true)],
        "{}",
        stdout(&cp.cli(&["-o", "json", "tasks", "alice-main"]))
    );
    let table = stdout(&cp.cli(&["tasks", "alice-main", "--agent", "claude"]));
    assert!(table.starts_with("ID"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains("create file demo/cli-note.md"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("done") && row.contains("claude"), "{row}");
    let listed = json_out(&cp.cli(&["-o", "json", "tasks", "alice-main", "--state", "done"]));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "done")
    );

    // events: every event in seq order; filters narrow it.
    let all = json_out(&cp.cli(&["-o", "json", "events", "alice-main"]));
    let seqs: Vec<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gapless, in order"
    );
    let finished = json_out(&cp.cli(&[
        "-o",
        "json",
        "events",
        "alice-main",
        "--type",
        "task_finished",
        "--agent",
        "claude",
    ]));
    let finished = finished.as_array().unwrap();
    assert!(!finished.is_empty());
    assert!(
        finished
            .iter()
            .all(|e| e["type"] == "task_finished" && e["agent"] == "claude")
    );
    assert!(finished.iter().any(|e| e["data"]["task"] == id));
    let text = stdout(&cp.cli(&["events", "alice-main", "--type", "file_edit"]));
    assert!(text.starts_with("   SEQ  TIME"), "{text}");
    assert!(
        text.lines().skip(1).all(|l| l.contains("file_edit")),
        "{text}"
    );

    // events -f: prints what happens after --since, live, and ends cleanly on Ctrl-C.
    let last = *seqs.last().unwrap();
    let mut follow = Command::new(env!("CARGO_BIN_EXE_coditect"))
        .env("CODITECT_SERVER", &cp.server)
        .env("CODITECT_CONFIG", cp.data.join("admin.yaml"))
        .args([
            "-o",
            "json",
            "events",
            "alice-main",
            "-f",
            "--type",
            "task_queued",
        ])
        .args(["--since", &last.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let live = json_out(&cp.cli(&["-o", "json", "tasks", "submit", "alice-main", "live one"]));
    let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(line["type"], "task_queued");
    assert!(line["seq"].as_u64().unwrap() > last);
    assert_eq!(line["data"]["task"], live["id"], "{line}");
    kill(Pid::from_raw(follow.id() as i32), Signal::SIGINT).unwrap();
    assert!(
        follow.wait().unwrap().success(),
        "Ctrl-C ends -f with exit 0"
    );

    // locks: a lease taken through the gateway is listed with its holder and token.
    let gateway = cp.gateway("alice", "alice-main");
    let (status, lease) = gateway
        .post(
            "/w/acme/alice-main/v1/locks",
            &json!({"path": "demo/cli-held.txt", "mode": "exclusive", "holder": "operator"}),
        )
        .await;
    assert_eq!(status, 200, "{lease}");
    let table = stdout(&cp.cli(&["locks", "alice-main"]));
    let row = table
        .lines()
        .find(|l| l.contains("demo/cli-held.txt"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("operator") && row.contains(&lease["token"].to_string()),
        "{row}"
    );
    let locks = json_out(&cp.cli(&["-o", "json", "locks", "alice-main"]));
    assert!(
        locks["held"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["holder"] == "operator")
    );
    assert_eq!(locks["waiting"], json!([]));

    // agents: the four, with derived state and the tokens their calls were billed.
    let agents = json_out(&cp.cli(&["-o", "json", "agents", "alice-main"]));
    let names: Vec<&str> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["claude", "gemini", "codex", "kimi"]);
    let claude = &agents[0];
    assert!(
        ["idle", "working"].contains(&claude["state"].as_str().unwrap()),
        "{claude}"
    );
    assert!(
        claude["last_event"]["seq"].as_u64().unwrap() > 0,
        "{claude}"
    );
    let table = stdout(&cp.cli(&["agents", "alice-main"]));
    assert!(
        table.starts_with("NAME") && table.contains("kimi"),
        "{table}"
    );

    // query: a SELECT answers as a table; a write is refused and says why.
    let table = stdout(&cp.cli(&[
        "query", "alice-main", "sessions", "SELECT count(*) AS n FROM tasks WHERE title = 'create file demo/cli-note.md with note from the cli'",
    ]));
    assert_eq!(
        table.lines().map(str::trim).collect::<Vec<_>>(),
        ["N", "1"],
        "{table}"
    );
    let refused = cp.cli(&["query", "alice-main", "sessions", "DELETE FROM tasks"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("refused"), "{err}");

    // tasks cancel: a queued or running task is cancelled; a finished one is refused with
    // its state named.
    let refused = cp.cli(&["tasks", "cancel", "alice-main", &id.to_string()]);
    assert!(!refused.status.success(), "a done task cannot be cancelled");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("done"), "{err}");

    // open: the studio URL for this workspace, with the token in the fragment only.
    let url = stdout(&cp.cli(&["open", "alice-main"]));
    let url = url.trim();
    assert!(
        url.starts_with(&format!("{}/studio/?w=acme/alice-main#token=", cp.server)),
        "{url}"
    );
    let page = reqwest::get(url.split('#').next().unwrap()).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Coditect Studio"));
    let bare = stdout(&cp.cli(&["open", "alice-main", "--no-token"]));
    assert!(!bare.contains("token="), "{bare}");
}
