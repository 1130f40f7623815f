//! `GET /api/v1/users/{user_id}`: what is known of one user: first and
//! last seen, events by type and anomalies by rule and severity over a
//! window, and a risk score; 404 for a user of whom nothing is kept. A
//! user whose events retention removed is still known by their anomalies,
//! which are kept longer: `complete_from` says from when events are there.
//!
//! The risk score is the sum over the user's anomalies in the window of
//! the severity's weight (low 1, medium 3, high 10) halved for every day
//! of the anomaly's age (its event's time before now): `Σ w · 0.5^(age /
//! 24 h)`. Weights make one high anomaly outrank a handful of low ones;
//! the half-life lets a quiet user's score fade instead of staying at its
//! worst day's level forever, while a burst today counts in full. It is a
//! ranking aid for "who should we look at first", not a probability.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::analytics::missing_before;
use crate::analytics::params::user_id;
use crate::controllers::analytics::{Retained, query, time};
use crate::controllers::window::{RuleCount, TypeCount, WindowQuery};
use crate::error::{HttpError, LookupErrors};
use crate::state::ReadSide;

/// What is known of one user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserProfile {
    /// The user.
    pub user_id: String,
    /// The time of the user's first event still known: stored, or behind a
    /// kept anomaly (events before `complete_from` were removed).
    pub first_seen: String,
    /// The time of the user's latest event still known.
    pub last_seen: String,
    /// Every stored event of the user.
    pub events_total: i64,
    /// The window of what follows, in hours before now.
    pub window_hours: u32,
    /// Events in the window by type, largest first.
    pub events_by_type: Vec<TypeCount>,
    /// Anomalies in the window by rule and severity, largest first.
    pub anomalies: Vec<RuleCount>,
    /// Severity-weighted anomalies in the window, halved per day of age
    /// (see the module documentation): 0 for none.
    pub risk_score: f64,
    /// Retention removed this user's events before `complete_from` (the
    /// first and last seen and the total are of the events kept), or
    /// anomalies the window asks for.
    #[serde(flatten)]
    pub retained: Retained,
}

/// One user's profile; 404 for a user with no event or anomaly kept.
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users",
    params(crate::params::UserPath, WindowQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "The user's profile", body = UserProfile),
        LookupErrors,
    ))]
pub async fn get_user(
    State(read): State<Arc<ReadSide>>,
    Path(user): Path<String>,
    params: Result<Query<WindowQuery>, QueryRejection>,
) -> Result<Json<UserProfile>, HttpError> {
    let user = user_id(Some(&user))?.unwrap_or_default();
    let window = query(params)?.hours()?;
    let horizons = read.analytics.horizons().await?;
    let Some(profile) = read.analytics.user_profile(&user, window).await? else {
        return Err(HttpError::NotFound(format!(
            "nothing of user {user:?} is kept: no event, no anomaly"
        )));
    };
    Ok(Json(UserProfile {
        user_id: user,
        first_seen: time(&profile.first_seen),
        last_seen: time(&profile.last_seen),
        events_total: profile.events_total,
        window_hours: window,
        events_by_type: TypeCount::all(profile.by_type),
        anomalies: RuleCount::all(profile.by_rule),
        risk_score: profile.risk_score,
        retained: Retained {
            complete_from: horizons
                .events
                .max(missing_before(
                    horizons.anomalies,
                    Utc::now() - TimeDelta::hours(i64::from(window)),
                ))
                .map(|h| time(&h)),
            ..Retained::default()
        },
    }))
}
