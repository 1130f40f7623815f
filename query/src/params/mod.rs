//! Query parameters, each a type that reads its own text and states its
//! own OpenAPI schema ([`Param`]): an instant, a row limit, an hours
//! window, a bucket width, a grouping, a list of event types, sources,
//! rules or severities, a user id (a page cursor is `pages::Cursor`). The endpoints' query
//! structs (`analytics::params`, `pages`, `controllers::window`) declare
//! each field's type once (`#[param(value_type = …)]`), so the document
//! says exactly what the parser accepts and a client generated from it,
//! or a fuzzer, never sends a value the server refuses for its own sake.
//!
//! Every parameter is optional text, so extraction itself never fails and
//! each value is judged here with a message a dashboard author can act on.
//! An empty value counts as absent (what a dashboard sends for "All"); the
//! schemas allow it. What a schema cannot say (`from` before `to`,
//! `interval` or `interval_ms` but not both, the bucket cap) the
//! operations' descriptions say.

mod param;
mod schema;
mod types;

pub use param::{Param, ParamError};
pub(crate) use param::{present, refuse};

pub use types::{
    AnomalyGroup, AnomalyGroups, AnomalyKey, EventGroup, EventKey, EventTypes, Hours, Instant,
    IntervalMs, IntervalName, Limit, Rules, Severities, Sources, UserId,
};
