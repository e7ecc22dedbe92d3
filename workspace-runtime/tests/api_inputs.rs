//! Property tests over the instance API's inputs, as a hostile client sends them: file
//! paths built from `..`, encoded dots and slashes, absolute paths, and links that lead
//! outside `projects/`; SQL that tries `ATTACH` and `load_extension`; arbitrary JSON
//! bodies. Whatever comes, nothing outside `projects/` is read or written, no file is
//! attached into existence, and the answer is a refusal in the JSON error shape, never a
//! server error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::sync::OnceLock;

use coditect_runtime::testkit::{TestWorkspace, assert_answered, json_bodies};
use proptest::prelude::*;
use serde_json::{Value, json};

const SECRET: &str = "host secret, never to be served";

struct World {
    rt: tokio::runtime::Runtime,
    ws: TestWorkspace,
    outside: tempfile::TempDir,
    token: u64,
}

/// One instance for every case: `projects/demo/link` leads to a folder outside holding a
/// secret, `projects/demo/etc` to `/etc`; a lease on `demo/` lets writes through.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), SECRET).unwrap();
        let (ws, token) = rt.block_on(async {
            let ws = TestWorkspace::start().await;
            let projects = ws.runtime.layout.projects();
            std::fs::create_dir_all(projects.join("demo")).unwrap();
            std::fs::write(projects.join("demo/inside.md"), "inside\n").unwrap();
            std::os::unix::fs::symlink(outside.path(), projects.join("demo/link")).unwrap();
            std::os::unix::fs::symlink("/etc", projects.join("demo/etc")).unwrap();
            let (_, lease) = ws
                .client
                .post(
                    "/v1/locks",
                    &json!({"path": "demo/", "mode": "exclusive", "holder": "fuzz", "ttl_ms": 3_600_000}),
                )
                .await;
            let token = lease["token"].as_u64().expect("a lease");
            (ws, token)
        });
        World {
            rt,
            ws,
            outside,
            token,
        }
    })
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("%2e%2e".to_string()),
        Just("%2E%2e%2f".to_string()),
        Just("..%2f..".to_string()),
        Just("%2f".to_string()),
        Just("%00".to_string()),
        Just("".to_string()),
        Just("demo".to_string()),
        Just("link".to_string()),
        Just("etc".to_string()),
        Just("secret.txt".to_string()),
        Just("passwd".to_string()),
        Just("hostname".to_string()),
        Just("inside.md".to_string()),
        Just("fuzz-planted".to_string()),
        "[a-z0-9._~-]{1,6}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(segment(), 1..7)).prop_map(|(absolute, segs)| {
        let joined = segs.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

/// What is outside `projects/` that a planted write could create.
fn planted() -> Vec<PathBuf> {
    let w = world();
    let mut out = Vec::new();
    for dir in [
        w.outside.path().to_path_buf(),
        PathBuf::from("/etc"),
        w.ws.root.path().to_path_buf(),
    ] {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().contains("fuzz-planted") {
                out.push(entry.path());
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn file_paths_never_reach_outside_projects(path in path(), content in "[a-z ]{0,12}") {
        let w = world();
        w.rt.block_on(async {
            let resp = w.ws.client.request(reqwest::Method::GET, &format!("/v1/files/{path}")).send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            assert!(status < 500, "GET {path}: {status} {text}");
            assert!(!text.contains(SECRET), "GET {path} served the secret");
            assert!(!text.contains("root:x:0"), "GET {path} served /etc/passwd");
            let (status, body) = w.ws.client.put_file(&path, w.token, "fuzz", &content).await;
            assert_answered(status, &body, &format!("PUT {path}"));
        });
        prop_assert!(planted().is_empty(), "a write through {path} landed outside: {:?}", planted());
        let secret = std::fs::read_to_string(w.outside.path().join("secret.txt")).unwrap();
        prop_assert_eq!(secret, SECRET);
    }

    #[test]
    fn queries_stay_read_only_and_attach_nothing(
        db in prop_oneof![Just("sessions"), Just("messages"), Just("workspace_idx"), Just("nope"), Just("../x")],
        sql in prop_oneof![
            Just("ATTACH DATABASE 'fuzz-planted.db' AS p".to_string()),
            Just("SELECT load_extension('/tmp/fuzz-planted')".to_string()),
            Just("SELECT 1; ATTACH 'fuzz-planted.db' AS p".to_string()),
            Just("PRAGMA writable_schema = 1".to_string()),
            Just("DELETE FROM tasks".to_string()),
            Just("VACUUM INTO 'fuzz-planted.db'".to_string()),
            Just("SELECT * FROM sqlite_master".to_string()),
            "[ -~]{0,40}",
        ],
    ) {
        let w = world();
        w.rt.block_on(async {
            let (status, body) = w.ws.client.post("/v1/query", &json!({"db": db, "sql": sql})).await;
            assert_answered(status, &body, &format!("query {sql:?} on {db}"));
            if sql.contains("ATTACH") || sql.contains("load_extension") || sql.contains("VACUUM") || sql.starts_with("DELETE") {
                assert!(status >= 400, "{sql:?} was carried out: {body}");
            }
        });
        let stray = walk(w.ws.root.path()).into_iter().chain(walk(&std::env::current_dir().unwrap()))
            // (Writes inside projects/ are the file test's, and allowed.)
            .filter(|p| p.to_string_lossy().contains("fuzz-planted") && !p.starts_with(w.ws.runtime.layout.projects()))
            .collect::<Vec<_>>();
        prop_assert!(stray.is_empty(), "{:?}", stray);
    }

    #[test]
    fn any_json_body_is_answered_without_a_server_error(
        route in prop_oneof![Just("/v1/tasks"), Just("/v1/locks"), Just("/v1/messages"), Just("/v1/events"), Just("/v1/tasks/claim"), Just("/v1/query"), Just("/v1/session/renew")],
        body in json_value(),
    ) {
        let w = world();
        w.rt.block_on(async {
            let (status, answer) = w.ws.client.post(route, &body).await;
            assert_answered(status, &answer, &format!("POST {route} {body}"));
        });
    }
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && !p.ends_with("target")
            && !p.ends_with(".git")
        {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

const KEYS: &[&str] = &[
    "path", "mode", "holder", "agent", "title", "type", "data", "sql", "db", "ttl_ms", "priority",
];

fn json_value() -> impl Strategy<Value = Value> {
    json_bodies(KEYS, KEYS)
}
