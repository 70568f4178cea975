//! The state every request handler shares.

use std::sync::Arc;

use crate::auth::Auth;
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
}

impl AppState {
    pub fn new(config: Config, store: Store, auth: Auth, collab: Collab, plugins: Plugins, search: Search) -> Self {
        Self(Arc::new(Inner {
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
