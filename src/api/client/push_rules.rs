//! Push rules: `GET /pushrules/`, `/pushrules/global/`, and reading, setting, deleting,
//! enabling and re-acting single rules. The rules themselves are `service::push::rules`.
//! A kind the spec does not define holds no rules: reading one is `404 M_NOT_FOUND` (how
//! clients probe for optional kinds such as MSC4306's `postcontent`), changing one is
//! `400 M_INVALID_PARAM`.

use std::sync::Arc;

use axum::extract::State;
use ruma::OwnedUserId;
use ruma::api::client::push::{
    PushRule, delete_pushrule, get_pushrule, get_pushrule_actions, get_pushrule_enabled,
    get_pushrules_all, get_pushrules_global_scope, set_pushrule, set_pushrule_actions,
    set_pushrule_enabled,
};

use crate::{
    api::{AppState, Ruma, RumaResponse},
    error::{Error, Result},
    service::push::rules::{PushRulesRecord, insert_error, known_kind, remove_error},
};

fn no_such_rule() -> Error {
    Error::not_found("No such push rule")
}

/// The caller's push rules, read on the blocking pool.
async fn rules_of(services: &AppState, user: OwnedUserId) -> Result<Arc<PushRulesRecord>> {
    services.blocking(move |s| s.push.rules.record(&user)).await
}

/// `GET /pushrules/`
pub async fn get_all(
    State(services): State<AppState>,
    request: Ruma<get_pushrules_all::v3::Request>,
) -> Result<RumaResponse<get_pushrules_all::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let record = rules_of(&services, user).await?;
    Ok(RumaResponse(get_pushrules_all::v3::Response::new(
        record.global.clone(),
    )))
}

/// `GET /pushrules/global/`
pub async fn get_global(
    State(services): State<AppState>,
    request: Ruma<get_pushrules_global_scope::v3::Request>,
) -> Result<RumaResponse<get_pushrules_global_scope::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let record = rules_of(&services, user).await?;
    Ok(RumaResponse(get_pushrules_global_scope::v3::Response::new(
        record.global.clone(),
    )))
}

/// `GET /pushrules/global/{kind}/{ruleId}`
pub async fn get_rule(
    State(services): State<AppState>,
    request: Ruma<get_pushrule::v3::Request>,
) -> Result<RumaResponse<get_pushrule::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let record = rules_of(&services, user).await?;
    let rule = record
        .global
        .get(body.kind, &body.rule_id)
        .map(PushRule::from)
        .ok_or_else(no_such_rule)?;
    Ok(RumaResponse(get_pushrule::v3::Response::new(rule)))
}

/// `PUT /pushrules/global/{kind}/{ruleId}` (with `before` / `after`)
pub async fn set_rule(
    State(services): State<AppState>,
    request: Ruma<set_pushrule::v3::Request>,
) -> Result<RumaResponse<set_pushrule::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    services
        .blocking(move |s| {
            s.push.rules.edit(&user, |rules| {
                rules
                    .insert(body.rule, body.after.as_deref(), body.before.as_deref())
                    .map_err(insert_error)
            })
        })
        .await?;
    Ok(RumaResponse(set_pushrule::v3::Response::new()))
}

/// `DELETE /pushrules/global/{kind}/{ruleId}`
pub async fn delete_rule(
    State(services): State<AppState>,
    request: Ruma<delete_pushrule::v3::Request>,
) -> Result<RumaResponse<delete_pushrule::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    known_kind(&body.kind)?;
    services
        .blocking(move |s| {
            s.push.rules.edit(&user, |rules| {
                rules.remove(body.kind, &body.rule_id).map_err(remove_error)
            })
        })
        .await?;
    Ok(RumaResponse(delete_pushrule::v3::Response::new()))
}

/// `GET /pushrules/global/{kind}/{ruleId}/enabled`
pub async fn get_enabled(
    State(services): State<AppState>,
    request: Ruma<get_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<get_pushrule_enabled::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let record = rules_of(&services, user).await?;
    let rule = record
        .global
        .get(body.kind, &body.rule_id)
        .ok_or_else(no_such_rule)?;
    Ok(RumaResponse(get_pushrule_enabled::v3::Response::new(
        rule.enabled(),
    )))
}

/// `PUT /pushrules/global/{kind}/{ruleId}/enabled`
pub async fn set_enabled(
    State(services): State<AppState>,
    request: Ruma<set_pushrule_enabled::v3::Request>,
) -> Result<RumaResponse<set_pushrule_enabled::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    known_kind(&body.kind)?;
    services
        .blocking(move |s| {
            s.push.rules.edit(&user, |rules| {
                rules
                    .set_enabled(body.kind, &body.rule_id, body.enabled)
                    .map_err(|_| no_such_rule())
            })
        })
        .await?;
    Ok(RumaResponse(set_pushrule_enabled::v3::Response::new()))
}

/// `GET /pushrules/global/{kind}/{ruleId}/actions`
pub async fn get_actions(
    State(services): State<AppState>,
    request: Ruma<get_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<get_pushrule_actions::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    let record = rules_of(&services, user).await?;
    let rule = record
        .global
        .get(body.kind, &body.rule_id)
        .ok_or_else(no_such_rule)?;
    Ok(RumaResponse(get_pushrule_actions::v3::Response::new(
        rule.actions().to_vec(),
    )))
}

/// `PUT /pushrules/global/{kind}/{ruleId}/actions`
pub async fn set_actions(
    State(services): State<AppState>,
    request: Ruma<set_pushrule_actions::v3::Request>,
) -> Result<RumaResponse<set_pushrule_actions::v3::Response>> {
    let user = request.session()?.user_id.clone();
    let body = request.body;
    known_kind(&body.kind)?;
    services
        .blocking(move |s| {
            s.push.rules.edit(&user, |rules| {
                rules
                    .set_actions(body.kind, &body.rule_id, body.actions)
                    .map_err(|_| no_such_rule())
            })
        })
        .await?;
    Ok(RumaResponse(set_pushrule_actions::v3::Response::new()))
}
