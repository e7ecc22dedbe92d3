//! A real `coditect workspace-runtime` process lowers only its start-up work: the threads
//! that serve requests (the runtime's workers), every durable append (the event log's
//! writer) and sync (its thread and its uploads, whose rounds bound what a lost machine
//! loses) keep the priority they started with.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::{Command, Stdio};

use coditect_runtime::priority::{NICE_VARIABLE, this_thread_nice};
use coditect_runtime::testkit::{SPEC, TempRoot};

/// Each thread of `pid`: its name and nice value, from `/proc`.
fn threads(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the command's closing parenthesis start at field 3 (state);
        // nice is field 19.
        let after = stat.rsplit_once(')').unwrap().1;
        let nice: i32 = after.split_whitespace().nth(16).unwrap().parse().unwrap();
        out.push((comm.trim().to_string(), nice));
    }
    out
}

#[test]
fn sync_and_the_serving_threads_keep_their_priority() {
    let root = TempRoot::new();
    let spec = root.path().join("workspace.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let bucket = root.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_coditect"))
        .args(["workspace-runtime", "--spec"])
        .arg(&spec)
        .arg("--root")
        .arg(root.path().join("data"))
        .arg("--bucket")
        .arg(format!("file://{}", bucket.display()))
        .env_remove(NICE_VARIABLE)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _client = coditect_runtime::testkit::ready_client(&mut child);
    let seen = threads(child.id());
    let _ = child.kill();
    let _ = child.wait();

    let serving = this_thread_nice().unwrap();
    let of = |name: &str| -> Vec<i32> {
        seen.iter()
            .filter(|(n, _)| n == name)
            .map(|(_, nice)| *nice)
            .collect()
    };
    let (workers, writer) = (of("tokio-rt-worker"), of("event-log-write"));
    let (sync, uploads) = (of("sync"), of("sync-blocking"));
    assert!(!workers.is_empty(), "no runtime workers among {seen:?}");
    assert!(
        workers.iter().all(|n| *n == serving),
        "a serving thread was lowered: {seen:?}"
    );
    assert_eq!(writer, vec![serving], "the event log's writer: {seen:?}");
    // Threads the sync thread starts without a name of their own carry its name (Linux
    // copies it) and its priority: none of them is lowered.
    assert!(!sync.is_empty(), "no sync thread among {seen:?}");
    assert!(
        sync.iter().all(|n| *n == serving),
        "the sync thread was lowered: {seen:?}"
    );
    // Its uploads keep serving priority too: its rounds bound what a lost machine loses.
    assert!(
        uploads.iter().all(|n| *n == serving),
        "sync's blocking work was lowered: {seen:?}"
    );
}
