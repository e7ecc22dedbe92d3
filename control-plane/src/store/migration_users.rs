//! The store's per-user records of a migration: a thousand users do not belong in one
//! object's status, and each user's step must be durable on its own so a control plane
//! killed at any point resumes where every user was. The record is the migration
//! crate's JSON; the store only keeps it by (migration, login), in one transaction per
//! write.

use rusqlite::params;

use super::{Store, sqlite};
use crate::error::StoreError;

/// What a person asked for one user of a migration (`coditect migrate promote …`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MigrationWish {
    /// The migration.
    pub migration: String,
    /// The user.
    pub login: String,
    /// `promote`, `cutover`, `rollback` or `complete`.
    pub action: String,
    /// Cut over even when graded Investigate or Poor.
    pub approve: bool,
    /// Who asked.
    pub by: String,
}

impl Store {
    /// Records `login`'s state in `migration`.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn put_migration_user(
        &self,
        migration: &str,
        login: &str,
        record: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO migration_users (migration, login, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (migration, login) DO UPDATE SET record = excluded.record",
                params![migration, login, record.to_string()],
            )
            .map_err(sqlite)?;
        Ok(())
    }

    /// Every user record of `migration`, by login.
    ///
    /// # Errors
    /// SQLite failures, or a record that is not JSON.
    pub fn migration_users(
        &self,
        migration: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT login, record FROM migration_users WHERE migration = ?1 ORDER BY login",
            )
            .map_err(sqlite)?;
        let rows = stmt
            .query_map([migration], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sqlite)?;
        let mut out = Vec::new();
        for row in rows {
            let (login, text) = row.map_err(sqlite)?;
            let record = serde_json::from_str(&text).map_err(|e| {
                StoreError::Sqlite(format!("migration {migration}, user {login}: {e}"))
            })?;
            out.push((login, record));
        }
        Ok(out)
    }

    /// Records (replacing any earlier one) what a person asked for `wish.login`.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn put_migration_wish(&self, wish: &MigrationWish) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO migration_wishes (migration, login, action, approve, by) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (migration, login) DO UPDATE SET action = excluded.action,
                    approve = excluded.approve, by = excluded.by
                 -- A rollback asked for is not replaced by a later wish.
                 WHERE migration_wishes.action != 'rollback'",
                params![wish.migration, wish.login, wish.action, wish.approve, wish.by],
            )
            .map_err(sqlite)?;
        Ok(())
    }

    /// The wishes not yet acted on in `migration`.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn migration_wishes(&self, migration: &str) -> Result<Vec<MigrationWish>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT login, action, approve, by FROM migration_wishes WHERE migration = ?1 ORDER BY login",
            )
            .map_err(sqlite)?;
        let rows = stmt
            .query_map([migration], |r| {
                Ok(MigrationWish {
                    migration: migration.to_string(),
                    login: r.get(0)?,
                    action: r.get(1)?,
                    approve: r.get(2)?,
                    by: r.get(3)?,
                })
            })
            .map_err(sqlite)?;
        rows.collect::<Result<_, _>>().map_err(sqlite)
    }

    /// Removes `wish` once acted on, unless a newer one replaced it meanwhile.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn drop_migration_wish(&self, wish: &MigrationWish) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "DELETE FROM migration_wishes WHERE migration = ?1 AND login = ?2 AND action = ?3 AND approve = ?4",
                params![wish.migration, wish.login, wish.action, wish.approve],
            )
            .map_err(sqlite)?;
        Ok(())
    }

    /// Forgets every user record of `migration` (it was deleted).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn forget_migration_users(&self, migration: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(sqlite)?;
        tx.execute(
            "DELETE FROM migration_users WHERE migration = ?1",
            [migration],
        )
        .map_err(sqlite)?;
        tx.execute(
            "DELETE FROM migration_wishes WHERE migration = ?1",
            [migration],
        )
        .map_err(sqlite)?;
        tx.commit().map_err(sqlite)
    }
}
