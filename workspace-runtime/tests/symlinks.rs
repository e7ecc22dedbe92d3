//! A symbolic link inside `projects/` (any cloned repository can hold one) opens nothing
//! outside it: reads, fenced writes, the agents' listing and search through a link that
//! resolves outside are refused (403, or left out), nothing is created outside, and links
//! that stay inside keep working; seeding copies a link as a link, never what it leads to.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use coditect_runtime::agents::ToolCall;
use coditect_runtime::agents::tools::Toolbox;
use coditect_runtime::testkit::TestWorkspace;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_that_lead_outside_projects_open_nothing() {
    let ws = TestWorkspace::start().await;
    let projects = ws.runtime.layout.projects();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "host secret\n").unwrap();
    std::fs::create_dir_all(projects.join("demo")).unwrap();
    std::fs::write(projects.join("demo/inside.md"), "inside\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), projects.join("demo/link")).unwrap();
    std::os::unix::fs::symlink("/etc", projects.join("demo/etc")).unwrap();
    std::os::unix::fs::symlink("inside.md", projects.join("demo/alias.md")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/elsewhere", projects.join("demo/dangling")).unwrap();

    for path in ["demo/link/secret.txt", "demo/etc/hostname", "demo/dangling"] {
        let (status, body) = ws.client.get(&format!("/v1/files/{path}")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("outside_projects")),
            "{path}: {body}"
        );
    }
    let (status, body) = ws.client.get("/v1/files/demo/alias.md").await;
    assert_eq!(status, 200, "a link that stays inside works: {body}");

    let (_, lease) = ws
        .client
        .post(
            "/v1/locks",
            &json!({"path": "demo/", "mode": "exclusive", "holder": "alpha"}),
        )
        .await;
    let token = lease["token"].as_u64().unwrap();
    for path in ["demo/link/planted.txt", "demo/dangling"] {
        let (status, body) = ws.client.put_file(path, token, "alpha", "planted\n").await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    assert!(
        !outside.path().join("planted.txt").exists(),
        "nothing was created outside"
    );
    assert!(!std::path::Path::new("/nonexistent/elsewhere").exists());

    // The agents' tools see the same tree.
    let tools = Toolbox::new(ws.runtime.clone(), "alpha");
    tools.begin_task(1);
    let list = |name: &str, args| ToolCall {
        id: "c".into(),
        name: name.into(),
        arguments: args,
    };
    let listing = tools
        .run(&list("list_files", json!({})), "t/1/c")
        .await
        .unwrap();
    let files: Vec<&str> = listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"demo/inside.md") && files.contains(&"demo/alias.md"),
        "{files:?}"
    );
    assert!(
        !files
            .iter()
            .any(|f| f.contains("secret") || f.starts_with("demo/etc")),
        "{files:?}"
    );
    let found = tools
        .run(&list("search", json!({"pattern": "secret"})), "t/2/c")
        .await
        .unwrap();
    assert_eq!(found["matches"], json!([]), "{found}");
    let read = tools
        .run(
            &list("read_file", json!({"path": "demo/link/secret.txt"})),
            "t/3/c",
        )
        .await;
    assert!(
        read.unwrap_err().contains("outside"),
        "the read_file tool is refused too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_copies_a_link_as_a_link_never_what_it_leads_to() {
    let source = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "host secret\n").unwrap();
    std::fs::write(source.path().join("README.md"), "hello\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), source.path().join("escape")).unwrap();
    let spec = coditect_runtime::testkit::spec_from(&format!(
        "apiVersion: coditect.io/v1
kind: Workspace
metadata: {{name: seeded, organization: acme, team: qa}}
spec:
  owner: tester
  projects:
    - {{name: web, path: \"{}\"}}
  agents:
    - {{name: alpha, provider: offline}}
",
        source.path().display()
    ));
    let ws = TestWorkspace::start_in(
        std::sync::Arc::new(coditect_runtime::testkit::TempRoot::new()),
        spec,
    )
    .await;
    let seeded = ws.runtime.layout.projects().join("web");
    assert_eq!(
        std::fs::read_to_string(seeded.join("README.md")).unwrap(),
        "hello\n"
    );
    let link = seeded.join("escape");
    assert!(
        link.symlink_metadata().unwrap().file_type().is_symlink(),
        "copied as a link"
    );
    let (status, body) = ws.client.get("/v1/files/web/escape/secret.txt").await;
    assert_eq!(status, 403, "{body}");
}
