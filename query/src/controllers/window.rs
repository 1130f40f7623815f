//! What the user profile and the summary share: the `hours` window before
//! now, and counts by event type and by anomaly rule and severity.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::params::{Hours, Param, ParamError};

/// The window of the counts, in hours before now.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// The window, in hours before now: 1 to 8760, default 24.
    #[param(value_type = Option<Hours>, inline, example = "24")]
    pub hours: Option<String>,
}

impl WindowQuery {
    /// The window's length in hours, checked.
    pub fn hours(&self) -> Result<u32, ParamError> {
        Ok(Hours::optional("hours", self.hours.as_deref())?.unwrap_or(24))
    }
}

/// Anomalies of one rule and severity.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleCount {
    /// The rule.
    #[schema(example = "high_value_purchase")]
    pub rule: String,
    /// low, medium or high.
    #[schema(example = "medium")]
    pub severity: String,
    /// How many in the window.
    pub count: i64,
}

impl RuleCount {
    /// From (rule, severity, count) rows.
    pub fn all(rows: Vec<(String, String, i64)>) -> Vec<RuleCount> {
        rows.into_iter()
            .map(|(rule, severity, count)| RuleCount {
                rule,
                severity,
                count,
            })
            .collect()
    }
}

/// Events of one type.
#[derive(Debug, Serialize, ToSchema)]
pub struct TypeCount {
    /// The event type.
    #[serde(rename = "type")]
    #[schema(example = "login")]
    pub event_type: String,
    /// How many in the window.
    pub count: i64,
}

impl TypeCount {
    /// From (type, count) rows.
    pub fn all(rows: Vec<(String, i64)>) -> Vec<TypeCount> {
        rows.into_iter()
            .map(|(event_type, count)| TypeCount { event_type, count })
            .collect()
    }
}
