//! Pushers (`GET /pushers`, `POST /pushers/set`) and the notification list
//! (`GET /notifications`).

use axum::extract::State;
use ruma::api::client::push::{get_notifications, get_pushers, set_pusher};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::Result,
    util::now_millis,
};

/// `GET /pushers`
pub async fn get(
    State(services): State<AppState>,
    request: Ruma<get_pushers::v3::Request>,
) -> Result<RumaResponse<get_pushers::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let pushers = services
        .blocking(move |s| s.push.pushers.of(&user))
        .await?
        .into_iter()
        .map(|record| record.pusher)
        .collect();
    Ok(RumaResponse(get_pushers::v3::Response::new(pushers)))
}

/// `POST /pushers/set`: creates, replaces (`append: false` also takes the pushkey from other
/// users) or, with `kind: null`, deletes a pusher of the calling device's user.
pub async fn set(
    State(services): State<AppState>,
    request: Ruma<set_pusher::v3::Request>,
) -> Result<RumaResponse<set_pusher::v3::Response>> {
    let session = request.session()?.clone();
    let action = request.body.action;
    services
        .blocking(move |s| match action {
            set_pusher::v3::PusherAction::Post(post) => s.push.pushers.set(
                &session.user_id,
                &session.device_id,
                post.pusher,
                post.append,
                now_millis(),
            ),
            set_pusher::v3::PusherAction::Delete(ids) => {
                s.push.pushers.remove(&session.user_id, &ids)
            }
            _ => Err(crate::error::Error::invalid_param("Unknown pusher action")),
        })
        .await?;
    Ok(RumaResponse(set_pusher::v3::Response::new()))
}

/// `GET /notifications`
pub async fn notifications(
    State(services): State<AppState>,
    request: Ruma<get_notifications::v3::Request>,
) -> Result<RumaResponse<get_notifications::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let only_highlights = body.only.as_deref() == Some("highlight");
    let page = services
        .blocking(move |s| {
            s.notification_page(&user, body.from.as_deref(), body.limit, only_highlights)
        })
        .await?;
    let mut response = get_notifications::v3::Response::new(page.notifications);
    response.next_token = page.next_token;
    Ok(RumaResponse(response))
}
