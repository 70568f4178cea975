//! The state every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{AccessChanges, Auth};
use crate::collab::Collab;
use crate::config::Config;
use crate::plugins::Plugins;
use crate::search::Search;
use crate::store::Store;

/// Cheap to clone: everything is behind one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub auth: Auth,
    pub collab: Collab,
    pub plugins: Plugins,
    pub search: Search,
    /// Wakes when any node may have taken access away (`auth::access`).
    pub access: AccessChanges,
}

impl AppState {
    pub fn new(config: Config, store: Store, auth: Auth, collab: Collab, plugins: Plugins, search: Search) -> Self {
        let access = AccessChanges::spawn(store.clone(), Duration::from_millis(config.auth.access_check_ms));
        Self(Arc::new(Inner {
            access,
            config,
            store,
            auth,
            collab,
            plugins,
            search,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
