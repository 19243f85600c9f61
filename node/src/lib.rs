//! Everything one Renda node needs on its own.
//!
//! A node is one congress's office (township, county, city, province or national), named by its
//! 12-digit region code. This crate holds the node itself and its side of every link:
//!
//! - [`region`]: region codes, levels, and the tree they imply;
//! - [`record`]: the record model, one automerge document per record, with the suggestion and
//!   opinion workflows as pure folds over append-only events;
//! - [`store`]: the SQLite store, owned by one thread and reached through [`store::StoreHandle`];
//! - [`office`]: the operations staff perform, each one checked write transaction;
//! - [`route`]: which nodes hold a record, a pure function of the record and the tree;
//! - [`sync`]: the link loop both ends of a parent–child link run, and the child's client;
//! - [`validate`]: the error that names a field and the rule it broke;
//! - [`calendar`]: today in China Standard Time, and which dates are plausible;
//! - [`access`]: roles and bearer tokens of the local API and the dashboard (stored hashed);
//! - [`pki`]: the federation's CA and node certificates, and reading a region from a verified
//!   certificate; [`tls`]: a node's certificate as rustls configurations for both ends of a link.
//!
//! Only [`sync`] and [`tls`] know of the network; the record model, routing and the store know
//! nothing of it, and nothing here serves HTTP. The parent's side of the gRPC service, the query
//! service and the dashboard live in the hub crate.

pub mod access;
pub mod calendar;
pub mod node;
pub mod office;
pub mod pki;
pub mod record;
pub mod region;
pub mod rollups;
pub mod route;
pub mod store;
pub mod sync;
pub mod tls;
pub mod validate;
