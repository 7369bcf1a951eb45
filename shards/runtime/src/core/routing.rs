//! `RouteTable`: where a shard's values go, as the last commands said: which core of this
//! node owns each shard, and (cluster mode) whether this node owns it at all.
//!
//! Lives on its shard core, written only by the command loop (`SetShardOwners`,
//! `SetRoutes`) and read by that core's routers, which keep their own `Arc` of each map and
//! pick up a new one between reads.

use std::cell::RefCell;
use std::sync::Arc;

use crate::routes::Routes;

pub(crate) struct RouteTable {
    /// Index = shard id, value = the core that owns it.
    owners: RefCell<Arc<[u16]>>,
    /// Cluster mode: the node's routes (`None` on a single node: every shard is local).
    routes: RefCell<Option<Arc<Routes>>>,
}

impl RouteTable {
    /// Empty until the first command, `SetShardOwners`, which the pool sends before any
    /// other (so before ingest starts).
    pub(crate) fn new() -> Self {
        Self { owners: RefCell::new(Arc::from([])), routes: RefCell::new(None) }
    }

    pub(crate) fn owners(&self) -> Arc<[u16]> {
        self.owners.borrow().clone()
    }

    pub(crate) fn routes(&self) -> Option<Arc<Routes>> {
        self.routes.borrow().clone()
    }

    pub(crate) fn set_owners(&self, owners: Arc<[u16]>) {
        *self.owners.borrow_mut() = owners;
    }

    pub(crate) fn set_routes(&self, routes: Arc<Routes>) {
        *self.routes.borrow_mut() = Some(routes);
    }

    /// Whether `held` is still the owner map in force (a router's cheap check per read).
    pub(crate) fn owners_are(&self, held: &Arc<[u16]>) -> bool {
        Arc::ptr_eq(&self.owners.borrow(), held)
    }

    /// Whether `held` is still the routes in force.
    pub(crate) fn routes_are(&self, held: &Option<Arc<Routes>>) -> bool {
        self.routes.borrow().as_ref().map(Arc::as_ptr) == held.as_ref().map(Arc::as_ptr)
    }
}
