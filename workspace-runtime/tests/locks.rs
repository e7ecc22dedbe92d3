//! File locks: hierarchy, FIFO fairness, lease expiry, fencing, timeouts, restart.
//! Time is tokio's paused clock: expiry and timeouts are awaited, never slept for.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use coditect_runtime::error::LockError;
use coditect_runtime::locks::{LockMode, LockRequest};
use common::{locks, req, until};
use proptest::prelude::*;
use tokio::sync::mpsc;

const S: Duration = Duration::from_secs(1);
use LockMode::{Exclusive as X, Shared as R};

fn try_req(path: &str, mode: LockMode, holder: &str) -> LockRequest {
    LockRequest {
        wait_ms: Some(0),
        ..req(path, mode, holder)
    }
}

#[tokio::test(start_paused = true)]
async fn conflicts_follow_the_path_hierarchy() {
    let l = locks(30 * S, 10 * S);
    let t = &l.table;
    let dir = t.acquire(try_req("src/", X, "a")).await.unwrap();
    assert_eq!(dir.path, "src");
    assert!(matches!(
        t.acquire(try_req("src/main.rs", R, "b")).await,
        Err(LockError::Timeout { .. })
    ));
    assert!(matches!(
        t.acquire(try_req(".", R, "b")).await,
        Err(LockError::Timeout { .. })
    ));
    t.acquire(try_req("srcx/main.rs", X, "b"))
        .await
        .expect("srcx is not under src");
    t.acquire(try_req("docs", X, "b")).await.unwrap();
    t.release(dir.token).unwrap();
    let r1 = t.acquire(try_req("src/main.rs", R, "b")).await.unwrap();
    let r2 = t
        .acquire(try_req("src", R, "c"))
        .await
        .expect("shared locks share");
    assert!(matches!(
        t.acquire(try_req("src/main.rs", X, "d")).await,
        Err(LockError::Timeout { .. })
    ));
    assert!(r2.token > r1.token, "fencing tokens increase");
    assert!(matches!(
        t.acquire(try_req("../etc", X, "a")).await,
        Err(LockError::InvalidPath { .. })
    ));
    assert!(matches!(
        t.acquire(try_req("/etc", X, "a")).await,
        Err(LockError::InvalidPath { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_fifo_order() {
    let l = locks(30 * S, 60 * S);
    let t = l.table.clone();
    let first = t.acquire(req("src", X, "holder")).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let requests = [
        ("src/a.rs", X, "w1"),
        ("src/b.rs", R, "w2"),
        ("src", X, "w3"),
        ("src/a.rs", R, "w4"),
    ];
    for (n, (path, mode, who)) in requests.into_iter().enumerate() {
        let (t2, tx) = (t.clone(), tx.clone());
        tokio::spawn(async move {
            let lease = t2.acquire(req(path, mode, who)).await.unwrap();
            tx.send(lease).unwrap();
        });
        until(|| t.waiting() == n + 1).await;
    }
    t.release(first.token).unwrap();
    // w1 and w2 touch different files and nothing ahead of them conflicts: both granted.
    let a = rx.recv().await.unwrap();
    let b = rx.recv().await.unwrap();
    assert_eq!((a.holder.as_str(), b.holder.as_str()), ("w1", "w2"));
    // w3 needs all of src (conflicts with w1 and w2); w4 (shared src/a.rs) conflicts with
    // w1 and with w3 ahead of it. Both wait.
    tokio::task::yield_now().await;
    assert!(rx.try_recv().is_err());
    assert_eq!(t.waiting(), 2);
    t.release(a.token).unwrap();
    tokio::task::yield_now().await;
    assert!(rx.try_recv().is_err(), "w4 must not overtake w3");
    t.release(b.token).unwrap();
    let c = rx.recv().await.unwrap();
    assert_eq!(c.holder, "w3");
    t.release(c.token).unwrap();
    assert_eq!(rx.recv().await.unwrap().holder, "w4");
}

#[tokio::test(start_paused = true)]
async fn readers_do_not_starve_a_waiting_writer() {
    let l = locks(30 * S, 60 * S);
    let t = l.table.clone();
    let reader = t.acquire(req("x", R, "r1")).await.unwrap();
    let t2 = t.clone();
    let writer = tokio::spawn(async move { t2.acquire(req("x", X, "w")).await.unwrap() });
    until(|| t.waiting() == 1).await;
    assert!(
        matches!(
            t.acquire(try_req("x", R, "r2")).await,
            Err(LockError::Timeout { .. })
        ),
        "a new reader queues behind the writer"
    );
    t.release(reader.token).unwrap();
    assert_eq!(writer.await.unwrap().holder, "w");
}

#[tokio::test(start_paused = true)]
async fn a_dead_holders_lease_expires_and_passes_on() {
    let l = locks(5 * S, 60 * S);
    let t = l.table.clone();
    tokio::spawn(t.clone().run_expiry(std::future::pending::<()>()));
    let dead = t.acquire(req("src", X, "crashed")).await.unwrap();
    let started = tokio::time::Instant::now();
    let next = t.acquire(req("src/main.rs", X, "alive")).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= 5 * S && waited < 6 * S,
        "granted after the 5 s lease ran out, not before ({waited:?})"
    );
    assert!(next.token > dead.token);
    assert!(matches!(
        t.renew(dead.token, None),
        Err(LockError::UnknownToken { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn renewal_keeps_a_lease_alive() {
    let l = locks(5 * S, 60 * S);
    let t = l.table.clone();
    tokio::spawn(t.clone().run_expiry(std::future::pending::<()>()));
    let lease = t.acquire(req("a", X, "holder")).await.unwrap();
    for _ in 0..3 {
        tokio::time::advance(4 * S).await;
        t.renew(lease.token, None).unwrap();
    }
    assert_eq!(
        t.list().len(),
        1,
        "12 s after grant, renewed every 4 s, still held"
    );
    tokio::time::advance(6 * S).await;
    until(|| t.list().is_empty()).await;
}

#[tokio::test(start_paused = true)]
async fn stale_fencing_tokens_are_refused() {
    let l = locks(5 * S, 60 * S);
    let t = l.table.clone();
    tokio::spawn(t.clone().run_expiry(std::future::pending::<()>()));
    let old = t.acquire(req("src", X, "slow")).await.unwrap();
    assert_eq!(
        t.check_write(old.token, "src/main.rs").unwrap(),
        "src/main.rs"
    );
    let new = t.acquire(req("src", X, "fast")).await.unwrap(); // waits out the old lease
    let err = t.check_write(old.token, "src/main.rs").unwrap_err();
    assert!(matches!(err, LockError::StaleFencingToken { .. }), "{err}");
    t.check_write(new.token, "src/main.rs").unwrap();
    let err = t.check_write(new.token, "docs/readme.md").unwrap_err();
    assert!(
        err.to_string().contains("covers src, not this path"),
        "{err}"
    );
    let shared = t.acquire(req("docs", R, "reader")).await.unwrap();
    let err = t.check_write(shared.token, "docs/readme.md").unwrap_err();
    assert!(
        err.to_string()
            .contains("shared lock does not permit writes"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bounded_wait_fails_naming_the_holder() {
    let l = locks(30 * S, 3 * S);
    let t = l.table.clone();
    let held = t.acquire(req("src/lib.rs", X, "claude")).await.unwrap();
    let started = tokio::time::Instant::now();
    let err = t.acquire(req("src", R, "gemini")).await.unwrap_err();
    assert!(started.elapsed() >= 3 * S);
    match &err {
        LockError::Timeout {
            holder,
            token,
            held_path,
            waited_ms,
            ..
        } => {
            assert_eq!(
                (holder.as_str(), *token, held_path.as_str()),
                ("claude", held.token, "src/lib.rs")
            );
            assert_eq!(*waited_ms, 3000);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("held by claude"), "{err}");
    assert_eq!(t.waiting(), 0, "the timed-out request left the line");
}

#[tokio::test]
async fn grants_survive_a_restart_and_tokens_never_repeat() {
    let l = locks(60 * S, S);
    let a = l.table.acquire(req("src", X, "a")).await.unwrap();
    let b = l
        .table
        .acquire(LockRequest {
            ttl_ms: Some(1),
            ..req("docs", X, "b")
        })
        .await
        .unwrap();
    let dir = l.dir;
    drop(l.table);
    // b's 1 ms lease is over by the time we reopen; a's 60 s lease is not.
    let l = common::reopen(dir, 60 * S, S);
    let held: Vec<u64> = l.table.list().iter().map(|g| g.token).collect();
    assert_eq!(held, vec![a.token]);
    assert!(matches!(
        l.table.acquire(try_req("src/x", R, "c")).await,
        Err(LockError::Timeout { .. })
    ));
    let c = l.table.acquire(try_req("docs", X, "c")).await.unwrap();
    assert!(
        c.token > b.token,
        "token {} after restart must exceed {}",
        c.token,
        b.token
    );
    l.table
        .check_write(a.token, "src/main.rs")
        .expect("the surviving holder may still write");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Never two writers: after any sequence of try-acquires and releases, no two live
    /// grants conflict.
    #[test]
    fn never_two_conflicting_holders(ops in prop::collection::vec((0usize..6, any::<bool>(), any::<bool>()), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        rt.block_on(async {
            let l = locks(30 * S, S);
            let paths = [".", "src", "src/a.rs", "src/b.rs", "docs", "docs/x.md"];
            let mut held: Vec<u64> = Vec::new();
            for (p, exclusive, release) in ops {
                if release && !held.is_empty() {
                    let token = held.remove(p % held.len());
                    l.table.release(token).unwrap();
                } else {
                    let mode = if exclusive { X } else { R };
                    if let Ok(g) = l.table.acquire(try_req(paths[p], mode, "h")).await {
                        held.push(g.token);
                    }
                }
                let grants = l.table.list();
                for (i, a) in grants.iter().enumerate() {
                    for b in &grants[i + 1..] {
                        let overlap = a.path == "." || b.path == "." || a.path == b.path
                            || a.path.starts_with(&format!("{}/", b.path)) || b.path.starts_with(&format!("{}/", a.path));
                        let conflict = overlap && (a.mode == X || b.mode == X);
                        prop_assert!(!conflict, "{a:?} and {b:?} are both held");
                    }
                }
            }
            Ok(())
        })?;
    }
}
