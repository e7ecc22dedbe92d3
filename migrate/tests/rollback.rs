//! The reverse path on a real export folder: after a user's cutover, what they changed in
//! v2 (an edit, a new file, a deletion, an edit of a kept conflict copy) is written back
//! into the v1 layout where each file came from, nothing else in v1 is touched, and the
//! probe that must pass before any cutover writes, reads back and removes its object (and
//! fails on an export that cannot be written).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;

use coditect_migrate::copy::copy_tree;
use coditect_migrate::destination::Folder;
use coditect_migrate::export::V1Export;
use coditect_migrate::plan::plan;
use coditect_migrate::rollback::{check, write_back};
use coditect_migrate::synthetic::{self, DEEP_PATH};

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[tokio::test]
async fn what_the_user_changed_in_v2_goes_back_where_it_came_from_and_nothing_else_moves() {
    let dir = tempfile::tempdir().unwrap();
    let export_dir = dir.path().join("export");
    synthetic::write(&export_dir, 1).unwrap();
    let m = synthetic::migration(&export_dir, "");
    let at_cutover = plan(&m, |_, _| {}).await.unwrap().users.remove(0);
    let export = V1Export::open(&m.spec.source.export).await.unwrap();
    let v2 = dir.path().join("projects");
    copy_tree(&export, &at_cutover, &Folder(v2.clone()))
        .await
        .unwrap();
    let sb = |s: &str, p: &str| export_dir.join(format!("users/u00000/sandboxes/{s}/files/{p}"));
    let untouched = modified(&sb("sb-codex", "README.md"));

    // In v2: gemini's winning main.rs edited, claude's kept copy edited, a new file, the
    // deep file (kimi's alone) deleted.
    std::fs::write(v2.join("src/main.rs"), "fn main() { /* v2 */ }\n").unwrap();
    std::fs::write(
        v2.join("src/main.v1-claude.rs"),
        "// claude's, edited in v2\n",
    )
    .unwrap();
    std::fs::create_dir_all(v2.join("notes")).unwrap();
    std::fs::write(v2.join("notes/todo.md"), "- ship\n").unwrap();
    std::fs::remove_file(v2.join(DEEP_PATH)).unwrap();

    check(&m.spec.source.export).await.unwrap();
    let back = write_back(
        &m.spec.source.export,
        &at_cutover.id,
        &at_cutover.merged,
        "sb-kimi",
        &Folder(v2.clone()),
    )
    .await
    .unwrap();
    assert!(back.problems.is_empty(), "{back:?}");
    assert_eq!(back.written.len(), 3, "{back:?}");
    assert_eq!(back.deleted.len(), 1, "{back:?}");
    assert_eq!(
        std::fs::read_to_string(sb("sb-gemini", "src/main.rs")).unwrap(),
        "fn main() { /* v2 */ }\n"
    );
    assert_eq!(
        std::fs::read_to_string(sb("sb-claude", "src/main.rs")).unwrap(),
        "// claude's, edited in v2\n"
    );
    assert_eq!(
        std::fs::read_to_string(sb("sb-kimi", "notes/todo.md")).unwrap(),
        "- ship\n"
    );
    assert!(!sb("sb-kimi", DEEP_PATH).exists());
    assert_eq!(
        modified(&sb("sb-codex", "README.md")),
        untouched,
        "unchanged files stay as they were"
    );
    // The probe leaves nothing behind.
    let probes = export_dir.join(".coditect");
    assert!(!probes.exists() || std::fs::read_dir(&probes).unwrap().next().is_none());
}

#[tokio::test]
async fn no_cutover_without_a_writable_export() {
    let dir = tempfile::tempdir().unwrap();
    let export_dir = dir.path().join("export");
    synthetic::write(&export_dir, 1).unwrap();
    check(&format!("file://{}", export_dir.display()))
        .await
        .unwrap();
    // An export nobody can write into (not even root: /proc takes no new files).
    let refused = check("file:///proc/self/coditect-v1-export").await;
    let e = refused.unwrap_err().to_string();
    assert!(e.contains("/proc/self/coditect-v1-export"), "{e}");
}
