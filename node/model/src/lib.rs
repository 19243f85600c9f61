//! The Renda record model: what a record is and what its history means, with no I/O.
//!
//! - [`region`]: region codes, levels, and the tree they imply;
//! - [`record`]: one automerge document per record, with the suggestion and opinion workflows as
//!   pure folds over append-only events, the projection a store indexes, the rollup numbers and
//!   the quota rules, and the checks a peer's changes must pass;
//! - [`route`]: which nodes hold a record, a pure function of the record and the tree;
//! - [`validate`]: the error that names a field and the rule it broke;
//! - [`calendar`]: today in China Standard Time, and which dates are plausible.
//!
//! Architecture invariant: this crate performs no I/O. It depends on no database, network or
//! runtime crate (rusqlite, tokio, tonic, prost), so the model cannot reach SQLite or a peer; the
//! store (in `renda-node`) keeps what the model derives, and filters only on columns the model
//! derived ([`record::projection`]).

pub mod calendar;
pub mod record;
pub mod region;
pub mod route;
pub mod validate;
