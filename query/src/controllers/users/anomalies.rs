//! `GET /api/v1/users/{user_id}/anomalies`: one user's anomalies, a page at
//! a time, as the anomalies list gives them; 404 for a user of whom nothing
//! is kept (an anomaly outlives its event: a user whose events expired is
//! still listed here).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};

use crate::analytics::params::user_id;
use crate::controllers::analytics::query;
use crate::controllers::anomalies::list::{AnomalyList, page_of};
use crate::error::{HttpError, LookupErrors};
use crate::pages::UserAnomalyQuery;
use crate::state::ReadSide;

/// One user's anomalies, newest first, a page at a time; 404 for a user
/// with no event or anomaly kept.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/anomalies", tag = "users",
    params(crate::params::UserPath, UserAnomalyQuery),
    security((), ("read_token" = [])),
    responses(
        (status = 200, description = "A page of the user's anomalies", body = AnomalyList),
        LookupErrors,
    ))]
pub async fn list_user_anomalies(
    State(read): State<Arc<ReadSide>>,
    Path(user): Path<String>,
    params: Result<Query<UserAnomalyQuery>, QueryRejection>,
) -> Result<Json<AnomalyList>, HttpError> {
    let user = user_id(Some(&user))?.unwrap_or_default();
    let page = query(params)?.parse(user.clone())?;
    if !read.analytics.user_seen(&user).await? {
        return Err(HttpError::NotFound(format!(
            "nothing of user {user:?} is kept: no event, no anomaly"
        )));
    }
    Ok(Json(page_of(&read, &page).await?))
}
