//! `/api/v1/users/{user_id}/…`: one user's data. User ids are arbitrary
//! strings: percent-encode them in the path (`a%2Fb` is the user `a/b`).

pub mod anomalies;
pub mod get;
