//! Blue-green routing of users: `/u/{login}/…` goes to the v1 endpoint until the user is
//! cut over, and to their v2 workspace after (the workspace registry of a migration).
//!
//! A cutover holds the user's requests at the gateway — held, never failed — while the
//! migration copies what changed, verifies and flips the route; releasing lets them go to
//! the new side. The pause is measured per user. A rollback is one flip back. Routes are
//! written through to the store, so a control plane started again routes every user
//! where they were (holds are not: a held request dies with its process).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use coditect_specs::ObjectKey;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a request is held for a cutover at most (then 503 with `Retry-After`).
pub const MAX_HOLD: Duration = Duration::from_secs(30);

/// Where a user's requests go.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "to", rename_all = "lowercase")]
pub enum Route {
    /// The v1 endpoint (`https://v1.example.com`), which authenticates its users itself.
    V1 {
        /// Its base URL.
        endpoint: String,
    },
    /// Their v2 workspace, through the gateway with their own v2 credential.
    V2 {
        /// The workspace.
        workspace: ObjectKey,
    },
}

#[derive(Debug)]
struct UserRoute {
    route: Route,
    held_since: Option<Instant>,
}

/// Every user's route.
#[derive(Debug)]
pub struct UserRoutes {
    routes: Mutex<HashMap<String, UserRoute>>,
    /// Bumped on every change, for held requests to look again.
    changed: watch::Sender<u64>,
    /// Requests being held right now.
    held: std::sync::atomic::AtomicUsize,
    /// Where routes are kept across restarts (none: in memory only).
    store: Option<std::sync::Arc<crate::store::Store>>,
}

impl Default for UserRoutes {
    fn default() -> Self {
        UserRoutes {
            routes: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            held: std::sync::atomic::AtomicUsize::new(0),
            store: None,
        }
    }
}

/// Why a request found no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// The user is not being migrated.
    Unknown,
    /// Held longer than [`MAX_HOLD`].
    HeldTooLong,
}

impl UserRoutes {
    /// The routes `store` recorded, written through to it from now on.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn persisted(
        store: std::sync::Arc<crate::store::Store>,
    ) -> Result<Self, crate::error::StoreError> {
        let mut routes = HashMap::new();
        for (login, value) in store.user_routes()? {
            match serde_json::from_value::<Route>(value) {
                Ok(route) => {
                    routes.insert(
                        login,
                        UserRoute {
                            route,
                            held_since: None,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(%login, error = %e, "a recorded route is not readable; left out")
                }
            }
        }
        Ok(UserRoutes {
            routes: Mutex::new(routes),
            store: Some(store),
            ..UserRoutes::default()
        })
    }

    fn record(&self, login: &str, route: &Route) -> Result<(), crate::error::StoreError> {
        match &self.store {
            Some(store) => store.put_user_route(
                login,
                &serde_json::to_value(route).unwrap_or(serde_json::Value::Null),
            ),
            None => Ok(()),
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserRoute>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Routes `login` to `route` (not held).
    ///
    /// # Errors
    /// The route could not be recorded; nothing changed.
    pub fn set(&self, login: &str, route: Route) -> Result<(), crate::error::StoreError> {
        self.record(login, &route)?;
        self.routes().insert(
            login.to_string(),
            UserRoute {
                route,
                held_since: None,
            },
        );
        self.bump();
        Ok(())
    }

    /// Routes `login` nowhere (their `/u/{login}/…` is 404 again).
    ///
    /// # Errors
    /// The change could not be recorded; nothing changed.
    pub fn forget(&self, login: &str) -> Result<(), crate::error::StoreError> {
        if let Some(store) = &self.store {
            store.forget_user_route(login)?;
        }
        self.routes().remove(login);
        self.bump();
        Ok(())
    }

    /// Starts holding `login`'s requests. False when the user has no route.
    pub fn hold(&self, login: &str) -> bool {
        let held = self
            .routes()
            .get_mut(login)
            .map(|r| r.held_since.get_or_insert_with(Instant::now))
            .is_some();
        self.bump();
        held
    }

    /// Lets `login`'s held requests go where the route already points (a cutover that
    /// gave up), without recording anything.
    pub fn unhold(&self, login: &str) {
        if let Some(r) = self.routes().get_mut(login) {
            r.held_since = None;
        }
        self.bump();
    }

    /// Flips `login` to `route` and releases their held requests; how long they were held.
    ///
    /// # Errors
    /// The route could not be recorded: nothing flipped, the requests stay held.
    pub fn release(&self, login: &str, route: Route) -> Result<Duration, crate::error::StoreError> {
        self.record(login, &route)?;
        let paused = {
            let mut routes = self.routes();
            let entry = routes.entry(login.to_string()).or_insert(UserRoute {
                route: route.clone(),
                held_since: None,
            });
            entry.route = route;
            entry.held_since.take().map(|t| t.elapsed())
        };
        self.bump();
        Ok(paused.unwrap_or_default())
    }

    /// Where `login` is routed now (held or not); `None` when they are not migrating.
    pub fn current(&self, login: &str) -> Option<Route> {
        self.routes().get(login).map(|r| r.route.clone())
    }

    /// Requests held right now, of every user.
    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Where `login`'s request goes now, waiting while the user is held.
    ///
    /// # Errors
    /// [`NoRoute`].
    pub async fn route(&self, login: &str) -> Result<Route, NoRoute> {
        struct Holding<'a>(&'a std::sync::atomic::AtomicUsize, bool);
        impl Drop for Holding<'_> {
            fn drop(&mut self) {
                if self.1 {
                    self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
        let mut holding = Holding(&self.held, false);
        let mut changed = self.changed.subscribe();
        let deadline = Instant::now() + MAX_HOLD;
        loop {
            match self.routes().get(login) {
                None => return Err(NoRoute::Unknown),
                Some(r) if r.held_since.is_none() => return Ok(r.route.clone()),
                Some(_) => {}
            }
            if !holding.1 {
                holding.1 = true;
                self.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(NoRoute::HeldTooLong),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_held_request_waits_for_the_flip_and_goes_to_the_new_side() {
        let routes = std::sync::Arc::new(UserRoutes::default());
        let v1 = Route::V1 {
            endpoint: "http://v1".into(),
        };
        routes.set("alice", v1.clone()).unwrap();
        assert_eq!(routes.route("alice").await, Ok(v1));
        assert_eq!(routes.route("bob").await, Err(NoRoute::Unknown));
        assert!(routes.hold("alice"));
        let r = routes.clone();
        let held = tokio::spawn(async move { r.route("alice").await });
        tokio::time::advance(Duration::from_millis(300)).await;
        assert!(!held.is_finished());
        assert_eq!(routes.held(), 1);
        let v2 = Route::V2 {
            workspace: ObjectKey {
                kind: coditect_specs::Kind::Workspace,
                organization: Some("acme".into()),
                name: "alice-main".into(),
            },
        };
        let paused = routes.release("alice", v2.clone()).unwrap();
        assert_eq!(held.await.unwrap(), Ok(v2));
        assert_eq!(routes.held(), 0);
        assert!(paused >= Duration::from_millis(300), "{paused:?}");
        // Held past the limit: refused, not hung.
        routes.hold("alice");
        let r = routes.clone();
        let late = tokio::spawn(async move { r.route("alice").await });
        tokio::time::advance(MAX_HOLD + Duration::from_secs(1)).await;
        assert_eq!(late.await.unwrap(), Err(NoRoute::HeldTooLong));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cutover_that_gives_up_lets_held_requests_go_where_the_route_points() {
        let routes = std::sync::Arc::new(UserRoutes::default());
        let v1 = Route::V1 {
            endpoint: "http://v1".into(),
        };
        routes.set("alice", v1.clone()).unwrap();
        assert!(routes.hold("alice"));
        let r = routes.clone();
        let held = tokio::spawn(async move { r.route("alice").await });
        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(!held.is_finished());
        routes.unhold("alice");
        assert_eq!(held.await.unwrap(), Ok(v1.clone()));
        assert_eq!(routes.current("alice"), Some(v1));
        // Forgotten: routed nowhere again.
        routes.forget("alice").unwrap();
        assert_eq!(routes.route("alice").await, Err(NoRoute::Unknown));
    }
}

#[cfg(test)]
mod persisted {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn routes_outlive_the_process_that_set_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controlplane.db");
        let v2 = Route::V2 {
            workspace: ObjectKey {
                kind: coditect_specs::Kind::Workspace,
                organization: Some("acme".into()),
                name: "alice-main".into(),
            },
        };
        {
            let store = std::sync::Arc::new(crate::store::Store::open(&path).unwrap());
            let routes = UserRoutes::persisted(store).unwrap();
            routes
                .set(
                    "alice",
                    Route::V1 {
                        endpoint: "http://v1".into(),
                    },
                )
                .unwrap();
            routes
                .set(
                    "bob",
                    Route::V1 {
                        endpoint: "http://v1".into(),
                    },
                )
                .unwrap();
            routes.hold("alice");
            routes.release("alice", v2.clone()).unwrap();
        }
        let store = std::sync::Arc::new(crate::store::Store::open(&path).unwrap());
        let routes = UserRoutes::persisted(store).unwrap();
        let now = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        assert_eq!(now.block_on(routes.route("alice")), Ok(v2));
        assert_eq!(
            now.block_on(routes.route("bob")),
            Ok(Route::V1 {
                endpoint: "http://v1".into()
            })
        );
    }
}
