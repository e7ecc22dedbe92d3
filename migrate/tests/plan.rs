//! `plan` against a real v1 export folder: what each user becomes (landing, agents, the
//! merged tree with its conflict, the transcript lines), every file's hash as the bytes
//! were written (binary, empty, unicode, deep), nothing changed in the export; and each
//! kind of bad input reported at its object and line while the other users go on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;

use coditect_migrate::plan::plan;
use coditect_migrate::synthetic::{self, BINARY_PATH, DEEP_PATH, UNICODE_PATH};
use sha2::{Digest, Sha256};

/// Every file under `root`, with its bytes' hash: the export before and after.
fn snapshot(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p.display().to_string(), hex::encode(Sha256::digest(&bytes))));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_plan_says_what_each_user_becomes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let written = synthetic::write(dir.path(), 3).unwrap();
    let before = snapshot(dir.path());
    let m = synthetic::migration(
        dir.path(),
        "  target: {organization: acme-v2, workspaceName: '{login}-v1'}\n",
    );
    let seen = std::sync::Mutex::new(Vec::new());
    let p = plan(&m, |done, of| seen.lock().unwrap().push((done, of)))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![(1, 3), (2, 3), (3, 3)]);
    assert_eq!(p.users_in_export, 3);
    assert_eq!(p.users.len(), 3);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    let u = &p.users[0];
    assert_eq!(u.login, "user0");
    assert_eq!(
        (
            u.organization.as_str(),
            u.team.as_str(),
            u.workspace.as_str()
        ),
        ("acme-v2", "platform", "user0-v1")
    );
    assert_eq!(u.agents, vec!["claude", "codex", "gemini", "kimi"]);
    assert_eq!(
        u.files,
        written.files_per_user,
        "{:#?}",
        u.merged.files.keys()
    );
    assert_eq!(u.events, written.lines_per_user);
    assert!(u.problems.is_empty(), "{:?}", u.problems);
    // src/main.rs differs between claude and gemini: gemini was active later.
    assert_eq!(u.conflicts.len(), 1);
    assert_eq!(u.conflicts[0].path, "src/main.rs");
    assert_eq!(u.conflicts[0].winner, "sb-gemini");
    assert_eq!(
        u.conflicts[0].kept,
        vec![("sb-claude".to_string(), "src/main.v1-claude.rs".to_string())]
    );
    // The hashes verification will expect are the bytes' own.
    let all: Vec<u8> = (0..=255u8).collect();
    let expect = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    let files = &u.merged.files;
    assert_eq!(files[BINARY_PATH].sha256, expect(&all));
    assert_eq!(files[BINARY_PATH].size, 256);
    assert_eq!(files[".keep"].size, 0);
    assert_eq!(files[".keep"].sha256, expect(b""));
    assert_eq!(
        files[UNICODE_PATH].sha256,
        expect("héllo wörld 你好\n".as_bytes())
    );
    assert_eq!(files[DEEP_PATH].sandbox, "sb-kimi");
    assert_eq!(
        files["README.md"].sandbox, "sb-kimi",
        "same content: the newest copy"
    );
    assert_eq!(snapshot(dir.path()), before, "a plan changes nothing");
}

#[tokio::test]
async fn bad_input_is_reported_at_its_place_and_the_other_users_go_on() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write(dir.path(), 4).unwrap();
    let root = dir.path();
    // users.jsonl: a line that is not JSON (line 3 of 5).
    let users = std::fs::read_to_string(root.join("users.jsonl")).unwrap();
    let mut lines: Vec<&str> = users.lines().collect();
    lines.insert(2, "{\"id\": \"u9\", \"login\": ");
    std::fs::write(root.join("users.jsonl"), lines.join("\n")).unwrap();
    // user1: a sandbox without meta.json; user2: a transcript line with a bad role.
    std::fs::remove_file(root.join("users/u00001/sandboxes/sb-codex/meta.json")).unwrap();
    let t = root.join("users/u00002/sandboxes/sb-claude/transcript.jsonl");
    let mut text = std::fs::read_to_string(&t).unwrap();
    text.push_str("{\"ts\":\"2026-06-01T10:09:00Z\",\"role\":\"robot\",\"text\":\"x\"}\n");
    std::fs::write(&t, text).unwrap();

    let p = plan(&synthetic::migration(root, ""), |_, _| {})
        .await
        .unwrap();
    assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
    assert_eq!(p.problems[0].object, "users.jsonl");
    assert_eq!(p.problems[0].line, Some(3));
    assert_eq!(p.users.len(), 4, "the bad line is not a user; the four are");
    let by = |login: &str| p.users.iter().find(|u| u.login == login).unwrap();
    assert!(by("user0").problems.is_empty());
    assert!(by("user3").problems.is_empty());
    let missing = &by("user1").problems;
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(
        missing[0].object,
        "users/u00001/sandboxes/sb-codex/meta.json"
    );
    assert!(missing[0].reason.starts_with("missing"), "{}", missing[0]);
    assert_eq!(by("user1").agents, vec!["claude", "gemini", "kimi"]);
    let role = &by("user2").problems;
    assert_eq!(role.len(), 1, "{role:?}");
    assert_eq!(
        role[0].to_string(),
        "users/u00002/sandboxes/sb-claude/transcript.jsonl:4: role \"robot\" is not user, assistant or tool"
    );
    assert_eq!(p.users_with_problems(), 2);
}

#[tokio::test]
async fn two_users_landing_on_one_workspace_is_a_problem_of_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write(dir.path(), 2).unwrap();
    // Only the selected login is planned.
    let p = plan(
        &synthetic::migration(dir.path(), "  users: {logins: [user1]}\n"),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(p.users.len(), 1);
    assert_eq!(p.users[0].login, "user1");
    // `{login}-{team}`: login "a-b" of team "c" and login "a" of team "b-c" meet.
    std::fs::write(
        dir.path().join("users.jsonl"),
        "{\"id\":\"u00000\",\"login\":\"a-b\",\"email\":\"a@x\",\"org\":\"acme\",\"team\":\"c\",\"createdAt\":\"2025-01-01T00:00:00Z\"}\n\
         {\"id\":\"u00001\",\"login\":\"a\",\"email\":\"b@x\",\"org\":\"acme\",\"team\":\"b-c\",\"createdAt\":\"2025-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    let p = plan(
        &synthetic::migration(dir.path(), "  target: {workspaceName: '{login}-{team}'}\n"),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
    assert_eq!(
        p.problems[0].reason,
        "a and a-b both land on acme/a-b-c: change spec.target.workspaceName"
    );
}
