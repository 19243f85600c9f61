//! Everything one Renda node needs on its own.
//!
//! A node is one congress's office (township, county, city, province or national), named by its
//! 12-digit region code. This crate holds what works without any network:
//!
//! - [`region`]: region codes, levels, and the tree they imply;
//! - [`record`]: the record model, one automerge document per record, with the suggestion and
//!   opinion workflows as pure folds over append-only events;
//! - [`store`]: the SQLite store, owned by one thread and reached through [`store::StoreHandle`];
//! - [`office`]: the operations staff perform, each one checked write transaction;
//! - [`route`]: which nodes hold a record, a pure function of the record and the tree;
//! - [`validate`]: the error that names a field and the rule it broke.
//!
//! Sync, routing and the query service build on these in later layers; nothing here knows of
//! gRPC or HTTP.

pub mod office;
pub mod record;
pub mod region;
pub mod route;
pub mod store;
pub mod sync;
pub mod validate;
