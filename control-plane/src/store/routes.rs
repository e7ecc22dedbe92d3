//! The store's record of migrating users' routes (`/u/{login}/…`), so a control plane
//! started again routes every user where they were: v1 or their workspace.

use rusqlite::params;

use super::{Store, sqlite};
use crate::error::StoreError;

impl Store {
    /// Records `login`'s route (as JSON).
    ///
    /// # Errors
    /// SQLite failures.
    pub fn put_user_route(&self, login: &str, route: &serde_json::Value) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO user_routes (login, route) VALUES (?1, ?2)
                 ON CONFLICT (login) DO UPDATE SET route = excluded.route",
                params![login, route.to_string()],
            )
            .map_err(sqlite)?;
        Ok(())
    }

    /// Forgets `login`'s route.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn forget_user_route(&self, login: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM user_routes WHERE login = ?1", [login])
            .map_err(sqlite)?;
        Ok(())
    }

    /// Every recorded route, by login.
    ///
    /// # Errors
    /// SQLite failures.
    pub fn user_routes(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT login, route FROM user_routes ORDER BY login")
            .map_err(sqlite)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sqlite)?;
        let mut out = Vec::new();
        for row in rows {
            let (login, text) = row.map_err(sqlite)?;
            let route = serde_json::from_str(&text)
                .map_err(|e| StoreError::Sqlite(format!("route of {login}: {e}")))?;
            out.push((login, route));
        }
        Ok(out)
    }
}
