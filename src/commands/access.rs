//! `coditect token create|list|revoke` and `coditect auth can-i|whoami`.

use serde_json::{Value, json};

use crate::cli::{AuthCommand, CanIArgs, TokenCommand};
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

pub async fn token(
    format: OutputFormat,
    remote: &super::Remote,
    cmd: &TokenCommand,
) -> Result<(), Failure> {
    let client = remote.client()?;
    match cmd {
        TokenCommand::Create(args) => {
            let body = json!({
                "user": args.user, "ttl": args.ttl,
                "clusterAdmin": args.cluster_admin, "description": args.description,
            });
            let v = client
                .post_json("/apis/coditect.io/v1/tokens", &body)
                .await?;
            if format.is_structured() {
                return Ok(print_structured(format, &v)?);
            }
            let rec = &v["record"];
            eprintln!(
                "token {} for user {} ({}); it is shown this once — keep it (it is stored hashed):",
                rec["id"].as_str().unwrap_or_default(),
                rec["user"].as_str().unwrap_or_default(),
                rec["expiresAt"]
                    .as_str()
                    .map_or_else(|| "no expiry".to_string(), |e| format!("expires {e}"))
            );
            outln!("{}", v["token"].as_str().unwrap_or_default());
            Ok(())
        }
        TokenCommand::List(args) => {
            let mut q = Vec::new();
            if let Some(u) = &args.user {
                q.push(("user", u.clone()));
            }
            let v = client.get_json("/apis/coditect.io/v1/tokens", &q).await?;
            if format.is_structured() {
                return Ok(print_structured(format, &v)?);
            }
            let rows: Vec<Vec<String>> = items(&v)
                .map(|t| {
                    vec![
                        s(&t["id"]),
                        s(&t["user"]),
                        if t["clusterAdmin"] == true {
                            "yes"
                        } else {
                            "no"
                        }
                        .into(),
                        s(&t["createdAt"]),
                        t["expiresAt"].as_str().unwrap_or("never").into(),
                        s(&t["description"]),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "USER",
                    "CLUSTER-ADMIN",
                    "CREATED",
                    "EXPIRES",
                    "DESCRIPTION",
                ],
                &rows,
            );
            Ok(())
        }
        TokenCommand::Revoke(args) => {
            let id = args
                .id
                .strip_prefix("cdt_")
                .and_then(|r| r.split('_').next())
                .unwrap_or(&args.id);
            let v = client
                .delete_path(&format!("/apis/coditect.io/v1/tokens/{id}"))
                .await?;
            if format.is_structured() {
                return Ok(print_structured(format, &v)?);
            }
            outln!("token {id} revoked");
            Ok(())
        }
    }
}

pub async fn auth(
    format: OutputFormat,
    remote: &super::Remote,
    cmd: &AuthCommand,
) -> Result<(), Failure> {
    let client = remote.client()?;
    match cmd {
        AuthCommand::Whoami => {
            let v = client.get_json("/apis/coditect.io/v1/whoami", &[]).await?;
            if format.is_structured() {
                return Ok(print_structured(format, &v)?);
            }
            let admin = if v["clusterAdmin"] == true {
                " (cluster admin)"
            } else {
                ""
            };
            outln!("{}{admin}", s(&v["user"]));
            Ok(())
        }
        AuthCommand::CanI(args) => can_i(format, &client, args).await,
    }
}

async fn can_i(
    format: OutputFormat,
    client: &coditect_control_plane::client::Client,
    args: &CanIArgs,
) -> Result<(), Failure> {
    let Some((kind, name)) = args.object.split_once('/') else {
        eprintln!("error: name the object as KIND/NAME, e.g. workspace/bob-main");
        return Err(Failure::InvalidInput);
    };
    let kind = super::kind(kind)?;
    let org = match (&args.org, kind) {
        (Some(o), _) => Some(o.clone()),
        (None, coditect_specs::Kind::Organization) => None,
        // Find the organization of an existing object the caller can see.
        (None, _) => client
            .find(kind, name, None)
            .await
            .ok()
            .and_then(|r| r.metadata().organization.clone()),
    };
    let body = json!({
        "verb": args.verb, "kind": kind.plural(), "name": name, "organization": org,
        "team": args.team, "owner": args.owner, "as": args.as_user,
    });
    let v = client
        .post_json("/apis/coditect.io/v1/access-reviews", &body)
        .await?;
    if format.is_structured() {
        print_structured(format, &v)?;
    } else if v["allowed"] == true {
        outln!("yes");
    } else {
        outln!("no");
        eprintln!("{}", s(&v["reason"]));
    }
    if v["allowed"] == true {
        Ok(())
    } else {
        Err(Failure::Differences)
    }
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v["items"].as_array().into_iter().flatten()
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}
