//! Everything one Renda node needs on its own, townships included.
//!
//! A node is one congress's office (township, county, city, province or national), named by its
//! 12-digit region code. This crate holds the node itself and its side of every link:
//!
//! - [`node`]: the node's core as the `Node` builder (in the hub crate) starts it: the
//!   configuration, the store opened, the rollup kept fresh, the live link to the parent, and
//!   graceful shutdown;
//! - [`store`]: the SQLite store, owned by one thread and reached through [`store::StoreHandle`];
//! - [`office`]: the operations staff perform, each one checked write transaction;
//! - [`rollups`]: refreshing the node's rollup after writes; [`backups`]: scheduled backups
//!   of the node's database, kept N in a directory;
//! - [`sync`]: the link loop both ends of a parent–child link run, and the child's client;
//! - [`access`]: roles and bearer tokens of the local API and the dashboard (stored hashed);
//! - [`pki`]: the federation's CA and node certificates, and reading a region from a verified
//!   certificate; [`tls`]: a node's certificate as rustls configurations for both ends of a link.
//!
//! The record model ([`record`], [`region`], [`route`], [`validate`], [`calendar`]) is the
//! `renda-model` crate under `node/model`, which has no I/O dependencies; it is re-exported
//! here. Only [`sync`] and [`tls`] know of the network, and nothing here serves HTTP: the
//! parent's side of the gRPC service, the query service, the dashboard and metrics live in the
//! hub crate.

// The record model lives in its own crate, which has no I/O dependencies; its modules are
// re-exported here so that `renda_node::record` and `crate::record` name them as before.
pub use renda_model::{calendar, record, region, route, validate};

pub mod access;
pub mod backups;
pub mod import;
pub mod node;
pub mod office;
pub mod pki;
pub mod renewal;
pub mod rollups;
pub mod store;
pub mod sync;
pub mod tls;
mod wall_clock;
