//! End to end, with real processes: `coditect up` (control plane) starting real
//! `coditect workspace-runtime` children, driven through the real CLI and the gateway.
//! Every wait follows the control plane's watch stream or a readiness long-poll; nothing
//! sleeps.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use coditect_control_plane::client::condition_holds;
use coditect_runtime::testkit::TempRoot;
use coditect_specs::{Kind, ObjectKey};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use common::*;

/// Appends `n` events through the gateway; returns their acknowledged seqs.
async fn append_events(cp: &ControlPlane, owner: &str, ws: &str, n: usize) -> Vec<u64> {
    let api = cp.gateway(owner, ws);
    let mut seqs = Vec::new();
    for i in 0..n {
        let body = json!({"agent": "claude", "type": "agent_message", "data": {"i": i}});
        let (status, e) = api.post(&format!("/w/acme/{ws}/v1/events"), &body).await;
        assert_eq!(status, 200, "{e}");
        seqs.push(e["seq"].as_u64().unwrap());
    }
    seqs
}

async fn stored_seqs(cp: &ControlPlane, owner: &str, ws: &str) -> Vec<u64> {
    let (status, events) = cp
        .gateway(owner, ws)
        .get(&format!("/w/acme/{ws}/v1/events?since=0&limit=10000"))
        .await;
    assert_eq!(status, 200);
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_brings_the_examples_ready_and_a_spec_change_rolls_without_losing_data() {
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    let alice = ready(&cp, "alice-main").await;
    ready(&cp, "bob-main").await;
    assert_eq!(alice.metadata().generation, Some(1));
    let acked = append_events(&cp, "alice", "alice-main", 5).await;
    let old_pid = cp.pid("alice", "alice-main");
    // Change the spec: a longer lease.
    let changed = tmp.path().join("alice.yaml");
    let text = std::fs::read_to_string("specs/examples/03-workspace-alice.yaml").unwrap();
    let abs = std::fs::canonicalize("specs/projects/demo").unwrap();
    std::fs::write(
        &changed,
        text.replace("leaseTtl: 30s", "leaseTtl: 45s")
            .replace("../projects/demo", &abs.display().to_string()),
    )
    .unwrap();
    let out = cp.cli(&["apply", "-f", changed.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "workspace/acme/alice-main configured"
    );
    let rolled = cp
        .client()
        .watch_until(&ws_key("alice-main"), MINUTE, |r| {
            r.metadata().generation == Some(2)
                && condition_holds(r, "Ready")
                && endpoint(r) != endpoint(&alice)
        })
        .await
        .unwrap();
    assert_eq!(rolled.status_json()["observedGeneration"], 2);
    assert_ne!(
        cp.pid("alice", "alice-main"),
        old_pid,
        "a new instance runs the new spec"
    );
    let stored = stored_seqs(&cp, "alice", "alice-main").await;
    for seq in acked {
        assert!(
            stored.contains(&seq),
            "event {seq} acknowledged before the roll is gone"
        );
    }
    // Applying the same file again changes nothing, and diff agrees.
    let again = cp.cli(&["apply", "-f", changed.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "workspace/acme/alice-main unchanged"
    );
    assert_eq!(
        cp.cli(&["diff", "-f", changed.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        cp.cli(&["diff", "-f", "specs/examples/03-workspace-alice.yaml"])
            .status
            .code(),
        Some(1)
    );
    // The organization rolls up its workspaces.
    let org = ObjectKey {
        kind: Kind::Organization,
        organization: None,
        name: "acme".into(),
    };
    cp.client()
        .watch_until(&org, MINUTE, |r| r.status_json()["workspacesReady"] == 2)
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&cp.cli(&["get", "workspaces"]).stdout).to_string();
    assert!(
        table.contains("alice-main") && table.contains("Running"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_offline_agents_on_its_sample_tasks() {
    use futures_util::StreamExt;
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "alice-main").await;
    // Follow the event log through the gateway until the four seed tasks have finished.
    let mut socket = cp.alice_events(0).await;
    let mut events: Vec<Value> = Vec::new();
    while events
        .iter()
        .filter(|e| e["type"] == "task_finished")
        .count()
        < 4
    {
        if let tokio_tungstenite::tungstenite::Message::Text(t) =
            socket.next().await.unwrap().unwrap()
        {
            events.push(serde_json::from_str(&t).unwrap());
        }
    }
    for e in events.iter().filter(|e| e["type"] == "task_finished") {
        assert_eq!(e["data"]["state"], "done", "{e}");
    }
    let projects = cp.folder("alice", "alice-main").join("projects/demo");
    let readme = std::fs::read_to_string(projects.join("README.md")).unwrap();
    assert!(
        readme.starts_with("# demo\n"),
        "the project was copied in: {readme}"
    );
    for line in ["Reviewed by the lead.", "Tests pass offline."] {
        assert_eq!(readme.matches(line).count(), 1, "{readme}");
    }
    assert_eq!(
        std::fs::read_to_string(projects.join("TODO.md")).unwrap(),
        "- [ ] connect the real models"
    );
    let edits: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "file_edit")
        .map(|e| e["data"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(edits.len(), 3, "{edits:?}");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "message_sent" && e["agent"] == "gemini"),
        "the researcher's message is in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_lists_verifies_and_restores_a_workspace_from_its_bucket() {
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "alice-main").await;
    // Restorable once the instance owns the workspace in the bucket with a whole generation.
    let synced = cp
        .client()
        .watch_until(&ws_key("alice-main"), MINUTE, |r| {
            condition_holds(r, "Restorable")
        })
        .await
        .unwrap();
    let bucket = synced.status_json()["bucket"].as_str().unwrap().to_string();
    assert!(
        bucket.starts_with("file:///") && bucket.ends_with("/bucket/acme"),
        "{bucket}"
    );

    let list = cp.cli(&["-o", "json", "backup", "list", "alice-main"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let manifest: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(manifest["generation"], 1);
    assert_eq!(manifest["snapshots"].as_object().unwrap().len(), 6);

    let verify = cp.cli(&["backup", "verify", "alice-main"]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && text.contains("backup verified"),
        "{text}"
    );
    assert_eq!(text.matches("integrity_check ok").count(), 6, "{text}");

    let dest = tmp.path().join("restored");
    let restore = cp.cli(&[
        "-o",
        "json",
        "backup",
        "restore",
        "alice-main",
        "--to",
        dest.to_str().unwrap(),
    ]);
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let report: Value = serde_json::from_slice(&restore.stdout).unwrap();
    // Everything the listed manifest named, at least (rounds may have shipped more since).
    let listed_seq = manifest["events"]
        .as_array()
        .and_then(|e| e.last())
        .map_or(0, |e| e["last"].as_u64().unwrap());
    assert!(
        report["lastSeq"].as_u64().unwrap() >= listed_seq,
        "{report} against {listed_seq}"
    );
    assert!(dest.join("databases/sessions.db").exists());
    // Into a folder that is not empty: refused, nothing touched.
    let again = cp.cli(&[
        "backup",
        "restore",
        "alice-main",
        "--to",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // With --bucket, nothing but the bucket is needed: no control plane answers here.
    for command in ["list", "verify"] {
        let out = Command::new(env!("CARGO_BIN_EXE_coditect"))
            .env("CODITECT_SERVER", "http://127.0.0.1:9")
            .env("CODITECT_CONFIG", tmp.path().join("nowhere.yaml"))
            .args(["backup", command, "alice-main", "--bucket", &bucket])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "backup {command} --bucket: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_coditect"))
        .env("CODITECT_SERVER", "http://127.0.0.1:9")
        .args(["backup", "list", "nobody", "--bucket", &bucket])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no workspace nobody in"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A purge takes the bucket's copy too (a workspace created again under the name must
    // not restore the purged one).
    let prefix = bucket.trim_start_matches("file://").to_string()
        + "/organizations/acme/teams/platform/users/alice/workspaces/alice-main";
    assert!(Path::new(&prefix).join("manifest.json").exists());
    let out = cp.cli(&["delete", "workspace", "alice-main", "--purge"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = walk(Path::new(&prefix));
    assert!(left.is_empty(), "objects left after a purge: {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_comes_back_ready_with_nothing_acknowledged_lost() {
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    let before = ready(&cp, "bob-main").await;
    let acked = append_events(&cp, "bob", "bob-main", 40).await;
    let pid = cp.pid("bob", "bob-main");
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    cp.client()
        .watch_until(&ws_key("bob-main"), MINUTE, |r| {
            condition_holds(r, "Ready") && endpoint(r) != endpoint(&before)
        })
        .await
        .unwrap();
    assert_ne!(cp.pid("bob", "bob-main"), pid);
    let stored = stored_seqs(&cp, "bob", "bob-main").await;
    for seq in &acked {
        assert!(stored.contains(seq), "acknowledged event {seq} lost");
    }
    let (_, verify) = cp
        .gateway("bob", "bob-main")
        .get("/w/acme/bob-main/v1/verify")
        .await;
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_control_plane_adopts_running_instances() {
    let tmp = TempRoot::new();
    let mut cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "alice-main").await;
    ready(&cp, "bob-main").await;
    let pids = (cp.pid("alice", "alice-main"), cp.pid("bob", "bob-main"));
    cp.sigkill();
    assert_eq!(
        runtime_pids(tmp.path()).len(),
        2,
        "instances outlive a killed control plane"
    );
    let mut cp = ControlPlane::up(tmp.path(), &[]);
    cp.client().wait_ready(MINUTE).await.unwrap();
    assert_eq!(
        (cp.pid("alice", "alice-main"), cp.pid("bob", "bob-main")),
        pids,
        "adopted, not restarted"
    );
    let mut running = runtime_pids(tmp.path());
    running.sort_unstable();
    let mut expected = vec![pids.0, pids.1];
    expected.sort_unstable();
    assert_eq!(running, expected, "no duplicates");
    assert!(condition_holds(&ready(&cp, "alice-main").await, "Ready"));
    // A clean stop (Ctrl-C) stops the instances it runs.
    cp.stop();
    assert!(
        runtime_pids(tmp.path()).is_empty(),
        "clean stop leaves no instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stops_the_instance_cleanly_and_keeps_its_folder() {
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "bob-main").await;
    append_events(&cp, "bob", "bob-main", 3).await;
    let pid = cp.pid("bob", "bob-main");
    let out = cp.cli(&["delete", "workspace", "bob-main"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "workspace/acme/bob-main deleted (data kept)"
    );
    assert!(!alive(pid), "the instance stopped");
    let folder = cp.folder("bob", "bob-main");
    assert!(folder.join("databases/sessions.db").exists(), "data kept");
    let log = std::fs::read_to_string(folder.join("sessions/000001.jsonl")).unwrap();
    let last: Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        last["data"]["stopped"], true,
        "the finalizer stopped it cleanly: {last}"
    );
    assert_eq!(
        cp.cli(&["get", "workspace", "bob-main"]).status.code(),
        Some(4)
    );
    let refused = cp.cli(&["delete", "team", "platform"]);
    assert_eq!(refused.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("still has 1 workspace(s)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_with_invalid_documents_changes_nothing_and_prints_every_located_error() {
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &[]);
    // Problems only the server can see (references), next to valid documents.
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: coditect.io/v1\nkind: Workspace\nmetadata:\n  name: lost\n  organization: acme\n  team: ghosts\nspec:\n  owner: alice\n  agents: [{name: a, provider: offline}]\n---\napiVersion: coditect.io/v1\nkind: Team\nmetadata:\n  name: orphans\n  organization: nowhere\nspec: {}\n",
    )
    .unwrap();
    let out = cp.cli(&[
        "apply",
        "-f",
        "specs/examples/",
        "-f",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = bad.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{name}:6:9: metadata.team: team \"ghosts\" of organization \"acme\" is not declared"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{name}:15:17: metadata.organization: organization \"nowhere\" is not declared"
        )),
        "{stderr}"
    );
    // Problems the CLI sees itself never reach the server.
    let out = cp.cli(&[
        "apply",
        "-f",
        "specs/examples/",
        "-f",
        "specs/examples/invalid/unknown-provider.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .matches("unknown-provider.yaml:")
            .count(),
        3
    );
    assert_nothing_written(&cp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_breach_is_refused_and_nothing_is_written() {
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &[]);
    let org = std::fs::read_to_string("specs/examples/01-organization.yaml")
        .unwrap()
        .replace("maxWorkspaces: 20", "maxWorkspaces: 1")
        .replace("maxAwakeWorkspaces: 10", "maxAwakeWorkspaces: 1");
    let dir = tmp.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("01-organization.yaml"), org).unwrap();
    for f in ["02-team.yaml", "04-workspace-bob.yaml"] {
        std::fs::copy(Path::new("specs/examples").join(f), dir.join(f)).unwrap();
    }
    let alice = std::fs::read_to_string("specs/examples/03-workspace-alice.yaml")
        .unwrap()
        .replace("path: ../projects/demo", "path: .");
    std::fs::write(dir.join("03-workspace-alice.yaml"), alice).unwrap();
    let out = cp.cli(&["apply", "-f", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("04-workspace-bob.yaml:6:9: metadata.name: quota exceeded: organization \"acme\" allows 1 workspaces (spec.quotas.maxWorkspaces); this apply would make 2"), "{stderr}");
    assert_nothing_written(&cp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_workspaces_the_store_no_longer_holds_are_reaped() {
    let tmp = TempRoot::new();
    let mut cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "alice-main").await;
    ready(&cp, "bob-main").await;
    cp.sigkill();
    // The store is lost; the instances it declared are now orphans.
    for f in [
        "controlplane.db",
        "controlplane.db-wal",
        "controlplane.db-shm",
    ] {
        let _ = std::fs::remove_file(tmp.path().join(f));
    }
    assert_eq!(runtime_pids(tmp.path()).len(), 2);
    let cp = ControlPlane::up(tmp.path(), &[]);
    cp.client().wait_ready(MINUTE).await.unwrap();
    assert!(runtime_pids(tmp.path()).is_empty(), "orphans stopped");
    assert!(
        cp.folder("alice", "alice-main")
            .join("databases/sessions.db")
            .exists(),
        "their data is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_carries_websocket_streams_and_refuses_bad_tokens() {
    use futures_util::StreamExt;
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "alice-main").await;
    let acked = append_events(&cp, "alice", "alice-main", 3).await;
    let mut socket = cp.alice_events(acked[0]).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let tokio_tungstenite::tungstenite::Message::Text(t) =
            socket.next().await.unwrap().unwrap()
        {
            // The demo's agents write to the same log; follow the test's own events.
            let e = serde_json::from_str::<Value>(&t).unwrap();
            if e["data"]["i"].is_u64() {
                seen.push(e["seq"].as_u64().unwrap());
            }
        }
    }
    assert_eq!(
        seen,
        acked[1..].to_vec(),
        "resumed after the seq given, through the gateway"
    );
    let base = cp.server.replacen("http://", "ws://", 1);
    let wrong = format!("{base}/w/acme/alice-main/v1/events/ws?since=0&access_token=wrong");
    let err = tokio_tungstenite::connect_async(wrong).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let (status, _) = cp
        .gateway_as(&cp.admin_token())
        .get("/w/acme/no-such-workspace/v1/status")
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_prunes_what_the_manifests_no_longer_hold_and_delete_takes_files() {
    let tmp = TempRoot::new();
    let cp = ControlPlane::up(tmp.path(), &["specs/examples/"]);
    ready(&cp, "bob-main").await;
    let dry = cp.cli(&[
        "apply",
        "-f",
        "specs/examples/01-organization.yaml",
        "-f",
        "specs/examples/02-team.yaml",
        "-f",
        "specs/examples/03-workspace-alice.yaml",
        "--prune",
        "-l",
        "owner",
        "--dry-run",
    ]);
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("workspace/acme/bob-main pruned (dry run)"),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    assert!(
        cp.client().get(&ws_key("bob-main")).await.is_ok(),
        "a dry run changes nothing"
    );
    let out = cp.cli(&[
        "apply",
        "-f",
        "specs/examples/01-organization.yaml",
        "-f",
        "specs/examples/02-team.yaml",
        "-f",
        "specs/examples/03-workspace-alice.yaml",
        "--prune",
        "-l",
        "owner",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("workspace/acme/bob-main pruned"));
    let gone = cp
        .client()
        .watch_until(&ws_key("bob-main"), MINUTE, |_| false)
        .await;
    assert!(
        matches!(
            gone,
            Err(coditect_control_plane::client::ClientError::NotFound(_))
        ),
        "{gone:?}"
    );
    let out = cp.cli(&["delete", "-f", "specs/examples/03-workspace-alice.yaml"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        cp.client()
            .list(Kind::Workspace, None)
            .await
            .unwrap()
            .is_empty()
    );
    let yaml = String::from_utf8_lossy(&cp.cli(&["get", "teams", "-o", "yaml"]).stdout).to_string();
    assert!(
        yaml.contains("kind: Team") && yaml.contains("name: platform"),
        "{yaml}"
    );
}

/// The store holds no object of any kind.
async fn assert_nothing_written(cp: &ControlPlane) {
    for kind in Kind::ALL {
        assert!(
            cp.client().list(kind, None).await.unwrap().is_empty(),
            "nothing was written"
        );
    }
}

/// `coditect up | tee log`, then Ctrl-C: with its reader gone, `up` neither panics nor
/// leaves its instances running; it stops them and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_a_closed_stdout_still_stops_its_instances_on_ctrl_c() {
    use std::io::BufRead;
    let tmp = TempRoot::new();
    let data = tmp.path().join("data");
    let log = tmp.path().join("up.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coditect"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "up",
            "-f",
            "specs/examples/",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("CODITECT_OUTPUT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // "control plane listening on http://… (data in …)"
    let server = first
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .unwrap()
        .to_string();
    drop(lines); // the reader goes away, as tee does on Ctrl-C
    let mut cp = ControlPlane {
        child: Some(child),
        server,
        data: data.clone(),
    };
    ready(&cp, "alice-main").await;
    ready(&cp, "bob-main").await;
    assert!(!runtime_pids(&data).is_empty());
    let mut child = cp.child.take().unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        runtime_pids(&data).is_empty(),
        "every instance stopped: {stderr}"
    );
}
