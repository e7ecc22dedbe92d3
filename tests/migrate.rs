//! `coditect migrate plan` as a user runs it: a table of what each v1 user becomes, the
//! merge conflicts and the problems at their places, JSON with `-o json`, exit 1 on
//! problems, and a Migration manifest's mistake named by file, line and column.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use assert_cmd::Command;

fn manifest(dir: &std::path::Path, export: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("migration.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: coditect.io/v1\nkind: Migration\nmetadata: {{name: spring}}\nspec:\n  source: {{export: 'file://{}', endpoint: 'https://v1.example.com'}}\n  target: {{organization: acme}}\n",
            export.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn plan_prints_what_each_user_becomes_and_exits_1_on_problems() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    coditect_migrate::synthetic::write(&export, 2).unwrap();
    let m = manifest(dir.path(), &export);
    let out = Command::cargo_bin("coditect")
        .unwrap()
        .args(["migrate", "plan", "-f"])
        .arg(&m)
        .env("CI", "1")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("LOGIN"), "{text}");
    assert!(header.contains("CONFLICTS"), "{text}");
    let row = text.lines().find(|l| l.starts_with("user0 ")).unwrap();
    assert!(row.contains("acme/user0-main"), "{row}");
    assert!(row.contains("claude,codex,gemini,kimi"), "{row}");
    assert!(
        text.contains(
            "conflict  user0: src/main.rs from sb-gemini (sb-claude kept as src/main.v1-claude.rs)"
        ),
        "{text}"
    );
    assert!(text.contains("2 of 2 users"), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");

    let out = Command::cargo_bin("coditect")
        .unwrap()
        .args(["migrate", "plan", "-o", "json", "-f"])
        .arg(&m)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["migration"], "spring");
    assert_eq!(v["users"][1]["login"], "user1");
    assert_eq!(v["users"][1]["files"], 7);

    // A bad line in users.jsonl: reported at its place, exit 1.
    let users = export.join("users.jsonl");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str("{\"id\": 7}\n");
    std::fs::write(&users, text).unwrap();
    let out = Command::cargo_bin("coditect")
        .unwrap()
        .args(["migrate", "plan", "-f"])
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("problem   users.jsonl:3: invalid type: integer `7`, expected a string"),
        "{text}"
    );
}

#[test]
fn a_mistake_in_the_manifest_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.yaml");
    std::fs::write(
        &m,
        "apiVersion: coditect.io/v1\nkind: Migration\nmetadata: {name: x}\nspec:\n  source: {export: 'file:///nowhere'}\n  users: {batchSise: 10}\n",
    )
    .unwrap();
    let out = Command::cargo_bin("coditect")
        .unwrap()
        .args(["migrate", "plan", "-f"])
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{}:6:", m.display())), "{err}");
    assert!(err.contains("unknown field \"batchSise\""), "{err}");
}
