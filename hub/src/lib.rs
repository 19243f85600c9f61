//! What a node does for its subtree: accepting children's sync links now; rollups, the query
//! service and the dashboard with the rollup issue.
//!
//! - [`sync_server`]: the gRPC `Sync` service children dial, running the same link loop as the
//!   child side in `renda_node::sync`.
//!
//! Architecture invariant: the hub reads and writes records only through the node's store handle
//! and protocol types through `renda-proto`; it never opens SQLite itself.

pub mod sync_server;
