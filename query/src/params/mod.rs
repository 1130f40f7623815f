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
    IntervalMs, IntervalName, Limit, Rules, Severities, Sources, UserId, UserPath,
};

/// Declares a query struct that filters anomalies: its own fields before
/// the filters, the filters (`rule`, `severity`, and `user_id` when it
/// says `with user_id`), then its own fields after them, in that order in
/// the document. The filters' documentation and types are written here
/// once for every anomaly endpoint.
macro_rules! anomaly_filter_query {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$before_meta:meta])* pub $before:ident: Option<String>,)*
            ..filters $(with $user:ident)?;
            $($(#[$after_meta:meta])* pub $after:ident: Option<String>,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
        #[serde(deny_unknown_fields)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            $($(#[$before_meta])* pub $before: Option<String>,)*
            /// Only these rules (comma-separated).
            #[param(value_type = Option<$crate::params::Rules>, inline, style = Form, explode = false, example = "high_value_purchase")]
            pub rule: Option<String>,
            /// Only these severities (comma-separated): low, medium, high.
            #[param(value_type = Option<$crate::params::Severities>, inline, style = Form, explode = false, example = "high")]
            pub severity: Option<String>,
            $(
                /// Only this user's anomalies.
                #[param(value_type = Option<$crate::params::UserId>, inline, example = "user-42")]
                pub $user: Option<String>,
            )?
            $($(#[$after_meta])* pub $after: Option<String>,)*
        }
    };
}

pub(crate) use anomaly_filter_query;
