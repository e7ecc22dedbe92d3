//! Copying users' trees out of a real export folder and verifying them: a fresh copy is
//! Perfect, a second copy writes nothing, a byte flipped in v2 makes the user Investigate,
//! a file gone makes it Poor, a file v1 changed while the user is still on it is brought
//! up to date by copying again, and a copy killed midway (SIGKILL, a real child process)
//! (between two files; within one, the write goes to a temporary name renamed into place)
//! leaves only whole files in place and finishes when run again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;

use coditect_migrate::copy::{copy_tree, copy_tree_with};
use coditect_migrate::destination::Folder;
use coditect_migrate::export::V1Export;
use coditect_migrate::plan::plan;
use coditect_migrate::synthetic::{self, BINARY_PATH, UNICODE_PATH};
use coditect_migrate::verify::{Grade, verify};

#[tokio::test]
async fn a_copy_verifies_perfect_and_each_difference_has_its_grade() {
    let dir = tempfile::tempdir().unwrap();
    let export_dir = dir.path().join("export");
    synthetic::write(&export_dir, 1).unwrap();
    let m = synthetic::migration(&export_dir, "");
    let p = plan(&m, |_, _| {}).await.unwrap();
    let export = V1Export::open(&m.spec.source.export).await.unwrap();
    let (users, _) = export.users().await.unwrap();
    let (user, up) = (&users[0], &p.users[0]);
    let dest = dir.path().join("projects");

    let first = copy_tree(&export, up, &Folder(dest.clone())).await.unwrap();
    assert_eq!(first.written, 7, "{first:?}");
    assert!(first.problems.is_empty());
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(std::fs::read(dest.join(BINARY_PATH)).unwrap(), all);
    assert_eq!(std::fs::read(dest.join(".keep")).unwrap(), b"");
    assert!(dest.join(UNICODE_PATH).exists());
    let v = verify(&export, &m, user, &Folder(dest.clone()))
        .await
        .unwrap();
    assert_eq!(v.grade, Grade::Perfect, "{v:?}");
    assert_eq!(v.checked, 7);
    // Idempotent: nothing is written again.
    let again = copy_tree(&export, up, &Folder(dest.clone())).await.unwrap();
    assert_eq!((again.written, again.unchanged), (0, 7));

    // One byte flipped in v2: Investigate, naming the file.
    let mut bytes = std::fs::read(dest.join(BINARY_PATH)).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(dest.join(BINARY_PATH), &bytes).unwrap();
    let v = verify(&export, &m, user, &Folder(dest.clone()))
        .await
        .unwrap();
    assert_eq!(v.grade, Grade::Investigate, "{v:?}");
    assert_eq!(v.differ, vec![BINARY_PATH.to_string()]);
    assert_eq!(
        v.reasons,
        vec![format!("1 file(s) differ from v1: {BINARY_PATH}")]
    );

    // A file gone: Poor.
    std::fs::remove_file(dest.join("README.md")).unwrap();
    let v = verify(&export, &m, user, &Folder(dest.clone()))
        .await
        .unwrap();
    assert_eq!(v.grade, Grade::Poor);
    assert_eq!(v.missing, vec!["README.md".to_string()]);

    // Copying again repairs both; v1 changing a file while the user is still on it is
    // caught by verification (against the export as it is now) and brought over.
    copy_tree(&export, up, &Folder(dest.clone())).await.unwrap();
    assert_eq!(
        verify(&export, &m, user, &Folder(dest.clone()))
            .await
            .unwrap()
            .grade,
        Grade::Perfect
    );
    std::fs::write(
        export_dir.join("users/u00000/sandboxes/sb-kimi/files/README.md"),
        "# changed in v1\n",
    )
    .unwrap();
    let v = verify(&export, &m, user, &Folder(dest.clone()))
        .await
        .unwrap();
    assert_eq!(v.differ, vec!["README.md".to_string()]);
    let now = plan(&m, |_, _| {}).await.unwrap();
    let synced = copy_tree(&export, &now.users[0], &Folder(dest.clone()))
        .await
        .unwrap();
    // kimi's README is now its own: it stays at the path (kimi was active last), and the
    // others' content is kept beside it, after the newest of them.
    assert_eq!(synced.written, 2, "{synced:?}");
    assert_eq!(
        std::fs::read_to_string(dest.join("README.v1-codex.md")).unwrap(),
        "# user0\n"
    );
    assert_eq!(
        verify(&export, &m, user, &Folder(dest.clone()))
            .await
            .unwrap()
            .grade,
        Grade::Perfect
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("README.md")).unwrap(),
        "# changed in v1\n"
    );
}

/// The child side of the SIGKILL test: copies, says each file once it is in place, and
/// after the third waits for a line on stdin that never comes (the parent kills it).
#[tokio::test]
async fn child_copy() {
    let Ok(export_dir) = std::env::var("CODITECT_TEST_CHILD_EXPORT") else {
        return; // only as the child of the test below
    };
    let dest = std::path::PathBuf::from(std::env::var("CODITECT_TEST_CHILD_DEST").unwrap());
    let m = synthetic::migration(Path::new(&export_dir), "");
    let p = plan(&m, |_, _| {}).await.unwrap();
    let export = V1Export::open(&m.spec.source.export).await.unwrap();
    let mut n = 0;
    copy_tree_with(&export, &p.users[0], &Folder(dest.clone()), |path| {
        use std::io::Write as _;
        n += 1;
        println!("copied {path}");
        std::io::stdout().flush().unwrap();
        if n == 3 {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_copy_killed_midway_leaves_only_whole_files_and_finishes_when_run_again() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let export_dir = dir.path().join("export");
    synthetic::write(&export_dir, 1).unwrap();
    let dest = dir.path().join("projects");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_copy", "--nocapture", "--test-threads=1"])
        .env("CODITECT_TEST_CHILD_EXPORT", &export_dir)
        .env("CODITECT_TEST_CHILD_DEST", &dest)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut copied = Vec::new();
    while copied.len() < 3 {
        let line = lines.next().expect("the child ended early").unwrap();
        // The harness's own "test child_copy ... " may share the first line.
        if let Some((_, path)) = line.split_once("copied ") {
            copied.push(path.to_string());
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed");

    // What is in place is whole: exactly the files the child said, each with v1's bytes.
    let m = synthetic::migration(&export_dir, "");
    let export = V1Export::open(&m.spec.source.export).await.unwrap();
    let (users, _) = export.users().await.unwrap();
    let v = verify(&export, &m, &users[0], &Folder(dest.clone()))
        .await
        .unwrap();
    assert!(v.differ.is_empty(), "{v:?}");
    assert!(v.extra.is_empty(), "{v:?}");
    assert_eq!(v.missing.len(), 7 - 3, "{v:?}");
    // Run again: the rest is copied, nothing twice, and the user is Perfect.
    let p = plan(&m, |_, _| {}).await.unwrap();
    let rest = copy_tree(&export, &p.users[0], &Folder(dest.clone()))
        .await
        .unwrap();
    assert_eq!((rest.written, rest.unchanged), (4, 3), "{rest:?}");
    assert_eq!(
        verify(&export, &m, &users[0], &Folder(dest.clone()))
            .await
            .unwrap()
            .grade,
        Grade::Perfect
    );
}
