//! Physical floors, measured the same way on the same run, so every figure in
//! bench/README.md can be read as a ratio to what the machine can do at best.

use std::io::{Read, Write};
use std::time::Instant;

use coditect_bench::Percentiles;
use criterion::{Criterion, criterion_group, criterion_main};

fn fsync_4k(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("f"))
        .expect("open");
    let block = vec![b'x'; 4096];
    let p = Percentiles::new("floor/fsync_4k");
    c.bench_function("floor/fsync_4k", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                f.write_all(&block).expect("write");
                f.sync_data().expect("fsync");
                p.record(t.elapsed());
            }
            start.elapsed()
        });
    });
}

fn loopback_round_trip(c: &mut Criterion) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 64];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    });
    let mut client = std::net::TcpStream::connect(addr).expect("connect");
    client.set_nodelay(true).expect("nodelay");
    let p = Percentiles::new("floor/loopback_tcp_round_trip");
    c.bench_function("floor/loopback_tcp_round_trip", |b| {
        let mut buf = [0u8; 64];
        b.iter_custom(|n| {
            let start = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                client.write_all(b"ping").expect("write");
                client.read_exact(&mut buf[..4]).expect("read");
                p.record(t.elapsed());
            }
            start.elapsed()
        });
    });
}

fn sqlite_insert_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut conn = rusqlite::Connection::open(dir.path().join("f.db")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    conn.execute_batch("CREATE TABLE t (x INTEGER)")
        .expect("create");
    let p = Percentiles::new("floor/sqlite_insert_commit_wal_normal");
    c.bench_function("floor/sqlite_insert_commit_wal_normal", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for i in 0..n {
                let t = Instant::now();
                let tx = conn.transaction().expect("begin");
                tx.execute("INSERT INTO t VALUES (?1)", [i as i64])
                    .expect("insert");
                tx.commit().expect("commit");
                p.record(t.elapsed());
            }
            start.elapsed()
        });
    });
}

fn sqlite_empty_transaction_floor(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let conn = rusqlite::Connection::open(dir.path().join("e.db")).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    let p = Percentiles::new("floor/sqlite_empty_transaction");
    c.bench_function("floor/sqlite_empty_transaction", |b| {
        b.iter_custom(|n| {
            let start = Instant::now();
            for _ in 0..n {
                let t = Instant::now();
                conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
                    .expect("empty transaction");
                p.record(t.elapsed());
            }
            start.elapsed()
        });
    });
}

criterion_group! {
    name = floors;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_millis(500));
    targets = fsync_4k, loopback_round_trip, sqlite_insert_commit, sqlite_empty_transaction_floor
}
criterion_main!(floors);
