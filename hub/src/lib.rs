//! What a node does for its subtree: accepting children's sync links and keeping the subtree's
//! rollup fresh; the query service and the dashboard are still to come.
//!
//! - [`sync_server`]: the gRPC `Sync` service children dial, running the same link loop as the
//!   child side in `renda_node::sync`.
//! - [`rollups`]: recomputing the node's rollup when its records or its children's rollups
//!   change.
//!
//! Architecture invariant: the hub reads and writes records only through the node's store handle
//! and protocol types through `renda-proto`; it never opens SQLite itself.

pub mod rollups;
pub mod sync_server;
