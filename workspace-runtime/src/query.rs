//! Read-only SQL over the six databases for clients and operators. Two independent
//! guards: the connection is opened read-only, and an authorizer allows only reading
//! (SELECT, column reads, functions), so `ATTACH`, `PRAGMA` writes and every kind of
//! write are refused at prepare time, before anything runs.
//!
//! [`run_reading`] also answers which tables the statement reads (the authorizer sees
//! every table read at prepare time), so a live query knows which commits concern it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use serde::Serialize;
use serde_json::Value;

use crate::db::Databases;

/// Most rows one query returns.
pub const MAX_ROWS: usize = 1000;

/// A query's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, as JSON values.
    pub rows: Vec<Vec<Value>>,
    /// Whether more rows existed than [`MAX_ROWS`].
    pub truncated: bool,
}

/// Why a query was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No database of that name.
    #[error("no database {0:?}: expected one of {names}", names = crate::db::NAMES.join(", "))]
    UnknownDatabase(String),
    /// Not a single read-only statement.
    #[error("refused: only a single SELECT statement is allowed ({0})")]
    NotReadOnly(String),
    /// SQLite refused or failed.
    #[error("query failed: {0}")]
    Sqlite(String),
}

/// Runs one SELECT on database `db`.
///
/// # Errors
/// See [`QueryError`].
pub fn run(dbs: &Databases, db: &str, sql: &str) -> Result<QueryResult, QueryError> {
    run_reading(dbs, db, sql).map(|(result, _)| result)
}

/// [`run`], also answering the tables the statement reads.
///
/// # Errors
/// See [`QueryError`].
pub fn run_reading(
    dbs: &Databases,
    db: &str,
    sql: &str,
) -> Result<(QueryResult, BTreeSet<String>), QueryError> {
    let database = dbs
        .by_name(db)
        .ok_or_else(|| QueryError::UnknownDatabase(db.to_string()))?;
    let mut conn = database
        .read_only()
        .map_err(|e| QueryError::Sqlite(e.to_string()))?;
    let read: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let noted = read.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| match ctx.action {
        AuthAction::Read { table_name, .. } => {
            noted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(table_name.to_string());
            Authorization::Allow
        }
        AuthAction::Select | AuthAction::Function { .. } => Authorization::Allow,
        _ => Authorization::Deny,
    }))
    .map_err(|e| QueryError::Sqlite(e.to_string()))?;
    let result = collect(&conn, sql)?;
    let tables = std::mem::take(&mut *read.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((result, tables))
}

fn collect(conn: &rusqlite::Connection, sql: &str) -> Result<QueryResult, QueryError> {
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| QueryError::NotReadOnly(e.to_string()))?;
    if !stmt.readonly() {
        return Err(QueryError::NotReadOnly("statement writes".into()));
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut truncated = false;
    let mut cursor = stmt
        .query([])
        .map_err(|e| QueryError::Sqlite(e.to_string()))?;
    while let Some(r) = cursor
        .next()
        .map_err(|e| QueryError::Sqlite(e.to_string()))?
    {
        if rows.len() == MAX_ROWS {
            truncated = true;
            break;
        }
        let mut out = Vec::with_capacity(width);
        for i in 0..width {
            use rusqlite::types::ValueRef;
            out.push(
                match r
                    .get_ref(i)
                    .map_err(|e| QueryError::Sqlite(e.to_string()))?
                {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::from(n),
                    ValueRef::Real(f) => Value::from(f),
                    ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Value::from(hex::encode(b)),
                },
            );
        }
        rows.push(out);
    }
    Ok(QueryResult {
        columns,
        rows,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_pass() {
        let tmp = tempfile::tempdir().unwrap();
        let dbs = Databases::open(tmp.path()).unwrap();
        dbs.messages
            .write(|tx| {
                tx.execute(
                    "INSERT INTO messages (ts, sender, topic, body) VALUES (1, 'a', 't', '\"hi\"')",
                    [],
                )
            })
            .unwrap();
        let r = run(&dbs, "messages", "SELECT sender, body FROM messages").unwrap();
        assert_eq!(r.rows, vec![vec![Value::from("a"), Value::from("\"hi\"")]]);
        for bad in [
            "DELETE FROM messages",
            "INSERT INTO messages (ts, sender, body) VALUES (1, 'x', 'y')",
            "DROP TABLE messages",
            "PRAGMA journal_mode = DELETE",
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "SELECT 1; DELETE FROM messages",
        ] {
            assert!(
                run(&dbs, "messages", bad).is_err(),
                "{bad} should be refused"
            );
        }
        assert_eq!(
            run(&dbs, "messages", "SELECT count(*) FROM messages")
                .unwrap()
                .rows[0][0],
            Value::from(1)
        );
        let (_, read) = run_reading(
            &dbs,
            "workspace_idx",
            "SELECT l.path FROM locks l JOIN files f ON f.path = l.path UNION SELECT count(*) FROM counters",
        )
        .unwrap();
        assert_eq!(
            read.into_iter().collect::<Vec<_>>(),
            ["counters", "files", "locks"],
            "every table read, count(*) included"
        );
        assert!(matches!(
            run(&dbs, "nope", "SELECT 1"),
            Err(QueryError::UnknownDatabase(_))
        ));
    }
}
