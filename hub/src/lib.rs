//! What a node serves to others: accepting children's sync links (over mutual TLS when the node
//! has a certificate), answering queries, and serving the dashboard and metrics; and [`node`],
//! the one place a node's parts are wired together.
//!
//! - [`node`]: the `Node` builder: the node's own core from `renda_node::node` plus the servers
//!   below, started from one configuration and stopped gracefully.
//! - [`sync_server`]: the gRPC `Sync` service children dial, running the same link loop as the
//!   child side in `renda_node::sync`.
//! - [`query_api`]: the Query API for programs (`renda.query.v1`): typed answers on a listener
//!   of its own, over TLS with an ordinary server certificate and a bearer token, beside gRPC
//!   health checking and server reflection.
//! - [`query_server`]: the first, JSON-carrying `Query` service (rollups, record lists, one
//!   record, a delegate's duty record), served on the same port as `Sync` for the programs
//!   written against it.
//! - [`dashboard`]: the HTTP dashboard in Chinese, pages made on the server with SVG charts.
//! - [`auth`]: bearer tokens of credentials, and the role each call needs.
//! - [`https`]: the dashboard, metrics and Query API over TLS, and plain HTTP on loopback only.
//! - [`metrics`]: the operators' Prometheus endpoint (link counters, lag, refusals, store size).
//! - [`spreadsheet`]: .xlsx and .csv read into a table for imports, and .xlsx written for exports.
//!
//! Architecture invariant: the hub reads and writes records only through the node's store handle
//! and protocol types through `renda-proto`; it never opens SQLite itself.

pub mod auth;
pub mod dashboard;
pub mod https;
pub mod metrics;
pub mod node;
pub mod query_api;
pub mod query_server;
pub mod spreadsheet;
pub mod sync_server;
