//! `POST /user_directory/search`

use axum::{Json, extract::State};
use ruma::api::client::user_directory::search_users;
use serde_json::{Value, json};

use crate::{
    api::{AppState, Ruma},
    error::Result,
};

/// Largest `limit` served.
const MAX_LIMIT: usize = 100;

pub async fn search(
    State(services): State<AppState>,
    request: Ruma<search_users::v3::Request>,
) -> Result<Json<Value>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let limit = (u64::from(body.limit) as usize).clamp(1, MAX_LIMIT);
    let found = services
        .blocking(move |s| s.search_users(&user, &body.search_term, limit))
        .await?;
    Ok(Json(
        json!({ "results": found.results, "limited": found.limited }),
    ))
}
