//! What a node does for its subtree: accepting children's sync links, rollups over the subtree,
//! the query service and the dashboard.
//!
//! This crate is the hub layer's home in the workspace. Its parts arrive with the sync issue
//! (accepting children), and the rollup and dashboard issue; until then a node works alone
//! through `renda-node`, and this crate only ties the layers together in the dependency graph.
//!
//! Architecture invariant: the hub reads records through the node's store and protocol types
//! through `renda-proto`; it never opens SQLite itself.

pub use renda_node as node;
pub use renda_proto as proto;
