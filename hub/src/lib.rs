//! What a node does for its subtree: accepting children's sync links (over mutual TLS when the
//! node has a certificate), keeping the subtree's rollup fresh, answering queries, and serving
//! the dashboard.
//!
//! - [`sync_server`]: the gRPC `Sync` service children dial, running the same link loop as the
//!   child side in `renda_node::sync`.
//! - [`rollups`]: recomputing the node's rollup when its records or its children's rollups
//!   change.
//! - [`query_server`]: the gRPC `Query` service (rollups, record lists, one record, a
//!   delegate's duty record), served on the same port as `Sync`.
//! - [`dashboard`]: the HTTP dashboard in Chinese, pages made on the server with SVG charts.
//! - [`auth`]: bearer tokens of credentials, and the role each call needs.
//! - [`https`]: the dashboard and metrics over HTTPS, and plain HTTP on loopback only.
//! - [`metrics`]: the operators' Prometheus endpoint (link counters, lag, refusals, store size).
//!
//! Architecture invariant: the hub reads and writes records only through the node's store handle
//! and protocol types through `renda-proto`; it never opens SQLite itself.

pub mod auth;
pub mod dashboard;
pub mod https;
pub mod metrics;
pub mod query_server;
pub mod rollups;
pub mod sync_server;
