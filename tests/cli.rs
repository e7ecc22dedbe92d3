//! The `coditect` binary, driven as a user drives it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use assert_cmd::Command;
use predicates::prelude::*;

fn coditect() -> Command {
    let mut cmd = Command::cargo_bin("coditect").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CODITECT_OUTPUT");
    cmd
}

#[test]
fn validate_examples_succeeds() {
    coditect()
        .args(["validate", "-f", "specs/examples/"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "workspace/acme/alice-main  valid  sha256:",
        ))
        .stdout(predicate::str::contains("4 document(s) valid"));
}

#[test]
fn invalid_input_prints_compiler_style_errors_and_exits_1() {
    coditect()
        .args(["validate", "-f", "specs/examples/", "-f", "specs/examples/invalid/unknown-provider.yaml"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            r#"specs/examples/invalid/unknown-provider.yaml:16:17: spec.agents[1].provider: unknown provider "antropic" (did you mean "anthropic"?)"#,
        ))
        .stderr(predicate::str::contains("error: invalid manifests: 3 error(s)"));
}

#[test]
fn json_output_is_machine_readable() {
    let out = coditect()
        .args([
            "validate",
            "-f",
            "specs/examples/invalid/wrong-types.yaml",
            "-o",
            "json",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 9);
    assert_eq!(v["errors"][0]["column"], 20);
    assert_eq!(v["errors"][0]["path"], "spec.quotas.maxWorkspaces");
}

#[test]
fn validate_reads_stdin() {
    let org = std::fs::read_to_string("specs/examples/01-organization.yaml").unwrap();
    coditect()
        .args(["validate", "-f", "-", "-o", "json"])
        .write_stdin(org)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"name\": \"acme\""));
    coditect()
        .args(["validate", "-f", "-"])
        .write_stdin("kind: [")
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with("<stdin>:"));
}

#[test]
fn show_defaults_prints_effective_objects_that_validate_again() {
    let out = coditect()
        .args(["validate", "-f", "specs/examples/", "--show-defaults"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("leaseTtl: 30s"));
    assert!(text.contains("model: gemini-3.5-flash"));
    coditect()
        .args(["validate", "-f", "-"])
        .write_stdin(text)
        .assert()
        .success();
}

#[test]
fn schema_prints_json_schema() {
    let out = coditect()
        .args(["schema", "workspace"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["title"], "Workspace");
    coditect()
        .args(["schema", "gadget"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown kind"));
}

#[test]
fn version_and_usage() {
    coditect()
        .arg("version")
        .assert()
        .success()
        .stdout(predicate::str::contains("coditect.io/v1"));
    coditect().arg("frobnicate").assert().code(2);
    coditect()
        .args(["validate", "-f", "does/not/exist.yaml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("read does/not/exist.yaml"));
}

#[test]
fn a_missing_control_plane_is_named_with_the_way_to_start_one() {
    coditect()
        .args(["get", "workspaces"])
        .env("CODITECT_SERVER", "http://127.0.0.1:9")
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "no control plane at http://127.0.0.1:9 — start one with `coditect up`",
        ));
}

#[test]
fn agents_check_says_which_agents_it_could_not_check_and_why() {
    let out = coditect()
        .args([
            "agents",
            "check",
            "-f",
            "specs/examples/03-workspace-alice.yaml",
            "-o",
            "json",
        ])
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("MOONSHOT_API_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 4, "{reports:?}");
    for r in reports {
        assert_eq!(r["status"], "skipped", "{r}");
        assert_eq!(r["workspace"], "alice-main");
        assert!(
            r["detail"]
                .as_str()
                .unwrap()
                .contains("_API_KEY is not set"),
            "{r}"
        );
    }
    // An offline workspace's agents say they are offline, in a table.
    coditect()
        .args(["agents", "check", "-f", "-"])
        .write_stdin("apiVersion: coditect.io/v1\nkind: Workspace\nmetadata: {name: w, organization: o, team: t}\nspec:\n  owner: a\n  agents: [{name: p, provider: offline}]\n")
        .assert()
        .success()
        .stdout(predicate::str::contains("offline planner: makes no network calls"));
}

#[test]
fn help_lists_every_exit_code() {
    coditect()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("3 unavailable"))
        .stdout(predicate::str::contains("4 not found or refused"))
        .stdout(predicate::str::contains("70 internal error"));
}

#[test]
fn a_control_plane_dying_during_apply_is_exit_3_and_says_the_outcome_is_unknown() {
    use std::io::Read;
    // A "control plane" that takes the request and dies before answering.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            drop(stream);
        }
    });
    coditect()
        .args(["--server", &server, "apply", "-f", "specs/examples/"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "stopped answering before it replied",
        ))
        .stderr(predicate::str::contains("cannot be told whether"))
        .stderr(predicate::str::contains("coditect diff"));
}

#[test]
fn config_contexts_are_set_listed_and_switched_like_kubeconfig() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let with_config = |args: &[&str]| {
        let mut cmd = coditect();
        cmd.env("CODITECT_CONFIG", &config)
            .env_remove("CODITECT_SERVER")
            .env_remove("CODITECT_TOKEN")
            .args(args);
        cmd
    };
    for (name, port) in [("dev", "1"), ("prod", "9")] {
        with_config(&[
            "config",
            "set-context",
            name,
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--token",
            &format!("cdt_{name}_secret"),
        ])
        .assert()
        .success();
    }
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the config holds tokens");
    // The first context set became the current one.
    with_config(&["config", "current-context"])
        .assert()
        .success()
        .stdout("dev\n");
    with_config(&["config", "use-context", "prod"])
        .assert()
        .success();
    with_config(&["config", "get-contexts"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"(?m)^\*\s+prod\s+http://127.0.0.1:9$").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^\s+dev\s+http://127.0.0.1:1$").unwrap());
    // The current context is what commands connect to.
    with_config(&["get", "workspaces"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "no control plane at http://127.0.0.1:9",
        ));
    with_config(&["config", "use-context", "staging"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            r#"no context "staging" (it has: dev, prod)"#,
        ));
}

#[test]
fn without_a_token_the_control_plane_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = std::process::Command::new(env!("CARGO_BIN_EXE_coditect"))
        .args(["-o", "json", "up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(up.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let server = ready["server"].as_str().unwrap();
    coditect()
        .args(["get", "workspaces"])
        .env("CODITECT_SERVER", server)
        .env("CODITECT_CONFIG", dir.path().join("empty"))
        .env_remove("CODITECT_TOKEN")
        .assert()
        .code(4)
        .stderr(predicate::str::contains("no bearer token"))
        .stderr(predicate::str::contains("admin.yaml"));
    // Run from the data dir's parent, the CLI finds the admin credential by itself.
    coditect()
        .current_dir(dir.path())
        .args(["get", "workspaces"])
        .env("CODITECT_DATA_DIR", "data")
        .env_remove("CODITECT_SERVER")
        .env_remove("CODITECT_CONFIG")
        .env_remove("CODITECT_TOKEN")
        .env("HOME", dir.path())
        .assert()
        .success()
        .stderr(predicate::str::contains("no workspaces found"));
    let _ = up.kill();
    let _ = up.wait();
}

#[test]
fn cost_project_puts_auto_sleep_beside_always_on_and_the_brief() {
    let out = coditect()
        .args(["-o", "json", "cost", "project", "--users", "1000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let on = v["withoutAutoSleep"]["perUser"].as_f64().unwrap();
    let slept = v["withAutoSleep"]["perUser"].as_f64().unwrap();
    assert!(
        on > 7.0 && slept < 4.0,
        "always on {on}, with auto-sleep {slept}"
    );
    assert_eq!(v["brief"]["month"], 9500.0);
    // The arithmetic is the pricing file's: 730 h × (0.25 × 0.0445 + 1 × 0.0049225).
    let compute = v["withoutAutoSleep"]["month"]["compute"].as_f64().unwrap();
    assert!((compute - 1000.0 * 730.0 * (0.25 * 0.0445 + 0.0049225)).abs() < 1e-6);
    coditect()
        .args(["cost", "project", "--users", "1000"])
        .assert()
        .success()
        .stdout(predicate::str::contains("AUTO-SLEEP (198 h)"))
        .stdout(predicate::str::contains("per user a month"));
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "version: x\ncurrency: USD\nprices: {}\n").unwrap();
    coditect()
        .args(["cost", "project", "--pricing"])
        .arg(bad.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no price \"vcpuHour\""));
}

/// `coditect … | head`: a reader that went away ends the command quietly, exit 0, no panic.
#[test]
fn a_closed_stdout_ends_a_command_quietly_with_exit_0() {
    for args in [
        &["schema", "workspace"][..],
        &["-o", "json", "validate", "-f", "specs/examples/"],
    ] {
        let (read, write) = std::io::pipe().unwrap();
        drop(read); // the reader is gone before the first byte is written
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_coditect"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .stdout(write)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
