//! Seeding from the spec: projects copied from a folder or cloned from git into
//! `projects/`, a project that cannot be fetched reported without keeping the workspace
//! down, and seed tasks queued once, carried out by the agents, and never queued again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use coditect_runtime::testkit::{TempRoot, TestWorkspace, spec_from};

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spec(source: &Path, repo: &Path) -> String {
    format!(
        r#"
apiVersion: coditect.io/v1
kind: Workspace
metadata: {{name: seeded, organization: acme, team: qa}}
spec:
  owner: tester
  projects:
    - {{name: web, path: "{}"}}
    - {{name: lib, git: {{url: "file://{}", ref: main}}}}
    - {{name: gone, git: {{url: "file:///no/such/repository", ref: main}}}}
  agents:
    - {{name: alpha, provider: offline, role: coder}}
    - {{name: beta, provider: offline}}
  tasks:
    - {{title: "append seeded line to web/index.md", role: coder}}
    - {{title: "create file lib/NOTES.md with from a seed task", agent: beta}}
"#,
        source.display(),
        repo.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_seeds_projects_and_tasks_once() {
    let fixtures = tempfile::tempdir().unwrap();
    let source = fixtures.path().join("web");
    std::fs::create_dir_all(source.join("docs")).unwrap();
    std::fs::write(source.join("index.md"), "# web\n").unwrap();
    std::fs::write(source.join("docs/guide.md"), "guide\n").unwrap();
    let repo = fixtures.path().join("lib");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch", "main"]);
    std::fs::write(repo.join("lib.rs"), "pub fn f() {}\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "first"]);

    let text = spec(&source, &repo);
    let root = Arc::new(TempRoot::new());
    let ws = TestWorkspace::start_in(root, spec_from(&text)).await;
    let projects = ws.runtime.layout.projects();
    assert_eq!(
        std::fs::read_to_string(projects.join("web/docs/guide.md")).unwrap(),
        "guide\n"
    );
    assert_eq!(
        std::fs::read_to_string(projects.join("lib/lib.rs")).unwrap(),
        "pub fn f() {}\n"
    );
    assert!(!projects.join("gone").exists());
    let (_, events) = ws.client.get("/v1/events?since=0").await;
    let checkpoints: Vec<&serde_json::Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "checkpoint")
        .map(|e| &e["data"])
        .collect();
    assert!(
        checkpoints
            .iter()
            .any(|d| d["project_seeded"] == "web" && d["files"] == 2)
    );
    assert!(checkpoints.iter().any(|d| d["project_seeded"] == "lib"));
    assert!(
        checkpoints
            .iter()
            .any(|d| d["project_seed_failed"] == "gone"
                && d["reason"].as_str().unwrap().contains("git clone")),
        "{checkpoints:?}"
    );

    // The seed tasks are queued, routed as the spec says, and carried out by the agents.
    let (_, tasks) = ws.client.get("/v1/tasks").await;
    let tasks = tasks.as_array().unwrap().clone();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert!(tasks.iter().all(|t| t["submitted_by"] == "spec"));
    let root = ws.stop().await;
    let mut ws = TestWorkspace::start_in(root, spec_from(&text)).await;
    let (_, again) = ws.client.get("/v1/tasks").await;
    assert_eq!(
        again.as_array().unwrap().len(),
        2,
        "a restart queues no seed task twice"
    );
    let ids: Vec<i64> = tasks.iter().map(|t| t["id"].as_i64().unwrap()).collect();
    ws = {
        let root = ws.stop().await;
        TestWorkspace::start_in_with_agents(root, spec_from(&text)).await
    };
    common::finished(&ws, &ids).await;
    assert_eq!(
        std::fs::read_to_string(ws.runtime.layout.projects().join("web/index.md")).unwrap(),
        "# web\nseeded line\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws.runtime.layout.projects().join("lib/NOTES.md")).unwrap(),
        "from a seed task"
    );
    let (_, tasks) = ws.client.get("/v1/tasks").await;
    let by_title = |title: &str| {
        tasks
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["title"].as_str().unwrap().starts_with(title))
            .unwrap()
            .clone()
    };
    assert_eq!(by_title("append")["agent"], "alpha", "routed by role");
    assert_eq!(by_title("create")["agent"], "beta", "routed by name");
}
