//! The hot mirror end to end, with real processes: an organization whose `storage.mirror`
//! is an S3 bucket (a real S3-compatible server, moto's, reached as `mirrorAccess` says,
//! its secret key from a `secretRef`), `coditect up` starting a real instance that ships
//! to both, and `coditect backup … --from mirror` / `--bucket s3://…` reading the mirror.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::process::Command;

use coditect_control_plane::client::condition_holds;
use coditect_runtime::testkit::{S3Server, TempRoot};
use serde_json::Value;

use common::*;

fn specs(dir: &std::path::Path, endpoint: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("org.yaml"),
        format!(
            "apiVersion: coditect.io/v1\nkind: Organization\nmetadata:\n  name: acme\nspec:\n  storage:\n    bucket: file:bucket/acme\n    mirror: s3://coditect-mirror/acme\n    mirrorAccess:\n      endpoint: {endpoint}\n      accessKeyId: {{env: MIRROR_TEST_KEY_ID}}\n      secretAccessKey: {{secretRef: {{name: r2, key: secret-access-key}}}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("team.yaml"),
        "apiVersion: coditect.io/v1\nkind: Team\nmetadata:\n  name: platform\n  organization: acme\nspec:\n  members:\n    - user: alice\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ws.yaml"),
        "apiVersion: coditect.io/v1\nkind: Workspace\nmetadata:\n  name: alice-main\n  organization: acme\n  team: platform\nspec:\n  owner: alice\n  agents:\n    - name: claude\n      provider: anthropic\n      model: claude-sonnet-4-6\n      role: lead\n      credentials: {env: ANTHROPIC_API_KEY}\n      offlineFallback: true\n  tasks:\n    - title: \"create file demo/NOTES.md with mirrored\"\n      role: lead\n",
    )
    .unwrap();
}

/// `coditect backup ARGS` with no control plane, the mirror reached through the AWS
/// variables.
fn offline_backup(server: &S3Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_coditect"))
        .env("CODITECT_SERVER", "http://127.0.0.1:9")
        .env("AWS_ENDPOINT_URL_S3", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .args(["backup"])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_mirrors_to_its_organizations_s3_mirror_and_backup_reads_it() {
    let server = S3Server::start();
    let tmp = TempRoot::new();
    let spec_dir = tmp.path().join("specs");
    specs(&spec_dir, &server.endpoint);
    let data = tmp.path().join("data");
    let secret = data.join("secrets/r2");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("secret-access-key"), "test\n").unwrap();
    let mut cp = ControlPlane::up_with(
        &data,
        &[spec_dir.to_str().unwrap()],
        &[("MIRROR_TEST_KEY_ID", "test")],
        None,
    );
    ready(&cp, "alice-main").await;
    let synced = cp
        .client()
        .watch_until(&ws_key("alice-main"), MINUTE, |r| {
            condition_holds(r, "Restorable")
        })
        .await
        .unwrap();
    let status = synced.status_json();
    assert_eq!(status["mirror"], "s3://coditect-mirror/acme", "{status}");

    // A clean stop ships the last round to the bucket, then to the mirror.
    cp.stop();
    let bucket = format!("file://{}/bucket/acme", data.display());
    let primary = offline_backup(
        &server,
        &["-o", "json", "list", "alice-main", "--bucket", &bucket],
    );
    assert!(
        primary.status.success(),
        "{}",
        String::from_utf8_lossy(&primary.stderr)
    );
    let mirror = offline_backup(
        &server,
        &[
            "-o",
            "json",
            "list",
            "alice-main",
            "--bucket",
            "s3://coditect-mirror/acme",
        ],
    );
    assert!(
        mirror.status.success(),
        "{}",
        String::from_utf8_lossy(&mirror.stderr)
    );
    let (p, m): (Value, Value) = (
        serde_json::from_slice(&primary.stdout).unwrap(),
        serde_json::from_slice(&mirror.stdout).unwrap(),
    );
    assert_eq!(p, m, "the mirror holds the bucket's final manifest");
    let verify = offline_backup(
        &server,
        &[
            "verify",
            "alice-main",
            "--bucket",
            "s3://coditect-mirror/acme",
            "--from",
            "mirror",
        ],
    );
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && text.contains("backup verified"),
        "{text}"
    );
    let dest = tmp.path().join("restored");
    let restore = offline_backup(
        &server,
        &[
            "restore",
            "alice-main",
            "--bucket",
            "s3://coditect-mirror/acme",
            "--to",
            dest.to_str().unwrap(),
        ],
    );
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    assert!(dest.join("databases/sessions.db").exists());

    // Back up again: through the control plane, `--from mirror` finds the mirror in the
    // workspace's status (and the AWS variables reach it).
    let cp = ControlPlane::up_with(
        &data,
        &[spec_dir.to_str().unwrap()],
        &[("MIRROR_TEST_KEY_ID", "test")],
        None,
    );
    ready(&cp, "alice-main").await;
    let list = Command::new(env!("CARGO_BIN_EXE_coditect"))
        .env("CODITECT_SERVER", &cp.server)
        .env("CODITECT_CONFIG", data.join("admin.yaml"))
        .env("AWS_ENDPOINT_URL_S3", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .args([
            "-o",
            "json",
            "backup",
            "list",
            "alice-main",
            "--from",
            "mirror",
        ])
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(listed["generation"].as_u64().unwrap() >= p["generation"].as_u64().unwrap());
}
