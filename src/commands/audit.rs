//! `coditect audit [--since 1h|TIME] [--verify]`: the audit trail, oldest first, or a check
//! of its whole hash chain.

use serde_json::Value;

use crate::cli::AuditArgs;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    args: &AuditArgs,
) -> Result<(), Failure> {
    let client = remote.client()?;
    if args.verify {
        let v = client
            .get_json("/apis/coditect.io/v1/audit/verify", &[])
            .await?;
        if format.is_structured() {
            print_structured(format, &v)?;
        } else if v["ok"] == true {
            outln!(
                "audit trail verified: {} entries, chain head {}",
                v["events"],
                v["head"].as_str().unwrap_or_default()
            );
        } else {
            outln!(
                "audit trail BROKEN at entry {}: {}",
                v["seq"],
                v["reason"].as_str().unwrap_or_default()
            );
        }
        return if v["ok"] == true {
            Ok(())
        } else {
            Err(Failure::InvalidInput)
        };
    }
    let mut q = vec![("limit", args.limit.to_string())];
    if let Some(since) = &args.since {
        q.push(("sinceTime", since_time(since)?));
    }
    let v = client.get_json("/apis/coditect.io/v1/audit", &q).await?;
    if format.is_structured() {
        return Ok(print_structured(format, &v)?);
    }
    let rows: Vec<Vec<String>> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let d = &e["data"];
            let objects: Vec<&str> = d["objects"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            vec![
                e["seq"].to_string(),
                e["ts"].as_str().unwrap_or_default().into(),
                e["agent"].as_str().unwrap_or_default().into(),
                d["action"].as_str().unwrap_or_default().into(),
                d["result"].as_str().unwrap_or_default().into(),
                objects.join(","),
                d["detail"].as_str().unwrap_or_default().into(),
            ]
        })
        .collect();
    print_table(
        &[
            "SEQ", "TIME", "USER", "ACTION", "RESULT", "OBJECTS", "DETAIL",
        ],
        &rows,
    );
    Ok(())
}

/// `1h` (that long ago) or an RFC 3339 time, as RFC 3339.
fn since_time(since: &str) -> Result<String, Failure> {
    Ok(humantime::format_rfc3339_millis(super::parse_since(since)?).to_string())
}
