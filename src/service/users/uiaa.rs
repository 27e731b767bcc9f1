//! User-interactive authentication (UIAA) sessions: which stages a client has completed for
//! which operation.
//!
//! Sessions live in memory and expire after [`SESSION_LIFETIME`]: they guard one operation a
//! client is performing right now, so losing them at a restart only means starting it again.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ruma::{OwnedUserId, UserId};
use serde_json::{Value, json};

use crate::{error::Error, util::random_alphanumeric};

/// How long an unfinished UIAA session stays usable.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The stage names Hearth implements.
pub const DUMMY: &str = "m.login.dummy";
pub const PASSWORD: &str = "m.login.password";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";

struct UiaaSession {
    /// What the session authorizes (e.g. `delete_device`), so it cannot be replayed elsewhere.
    purpose: &'static str,
    /// The account the operation acts on (`None` during registration).
    user_id: Option<OwnedUserId>,
    completed: Vec<&'static str>,
    created: Instant,
}

/// In-memory UIAA session store.
#[derive(Default)]
pub struct UiaaService {
    sessions: Mutex<HashMap<String, UiaaSession>>,
}

impl UiaaService {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, UiaaSession>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns the id of the session the client named, or opens a new one. A named session
    /// that is unknown, expired, or belongs to another operation or user is an error.
    pub fn open(
        &self,
        session: Option<&str>,
        purpose: &'static str,
        user_id: Option<&UserId>,
    ) -> Result<String, Error> {
        let mut sessions = self.sessions();
        sessions.retain(|_, s| s.created.elapsed() < SESSION_LIFETIME);
        match session {
            Some(id) => match sessions.get(id) {
                Some(s) if s.purpose == purpose && s.user_id.as_deref() == user_id => {
                    Ok(id.to_owned())
                }
                _ => Err(Error::unknown(
                    http::StatusCode::BAD_REQUEST,
                    "Unknown or expired UIAA session",
                )),
            },
            None => {
                let id = random_alphanumeric(24);
                sessions.insert(
                    id.clone(),
                    UiaaSession {
                        purpose,
                        user_id: user_id.map(ToOwned::to_owned),
                        completed: Vec::new(),
                        created: Instant::now(),
                    },
                );
                Ok(id)
            }
        }
    }

    /// Records a completed stage.
    pub fn complete(&self, session: &str, stage: &'static str) {
        if let Some(s) = self.sessions().get_mut(session)
            && !s.completed.contains(&stage)
        {
            s.completed.push(stage);
        }
    }

    /// Whether the session has completed every stage of one of `flows`; if so the session is
    /// consumed (it authorizes exactly one operation).
    pub fn finish_if_done(&self, session: &str, flows: &[Vec<&'static str>]) -> bool {
        let mut sessions = self.sessions();
        let done = sessions.get(session).is_some_and(|s| {
            flows
                .iter()
                .any(|flow| flow.iter().all(|stage| s.completed.contains(stage)))
        });
        if done {
            sessions.remove(session);
        }
        done
    }

    /// The 401 answer telling the client which flows remain, optionally with why the last
    /// attempt failed.
    pub fn challenge(
        &self,
        session: &str,
        flows: &[Vec<&'static str>],
        failure: Option<(&str, &str)>,
    ) -> Error {
        let completed = self
            .sessions()
            .get(session)
            .map(|s| s.completed.clone())
            .unwrap_or_default();
        let flows: Vec<Value> = flows
            .iter()
            .map(|stages| json!({ "stages": stages }))
            .collect();
        let mut body = json!({
            "flows": flows,
            "params": {},
            "session": session,
            "completed": completed,
        });
        if let (Some((errcode, error)), Some(obj)) = (failure, body.as_object_mut()) {
            obj.insert("errcode".into(), errcode.into());
            obj.insert("error".into(), error.into());
        }
        Error::Uiaa(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_bound_to_its_purpose_and_consumed_once() {
        let uiaa = UiaaService::default();
        let flows = vec![vec![DUMMY]];
        let id = uiaa.open(None, "register", None).unwrap();
        assert!(uiaa.open(Some(&id), "delete_device", None).is_err());
        assert!(!uiaa.finish_if_done(&id, &flows));
        uiaa.complete(&id, DUMMY);
        assert!(uiaa.finish_if_done(&id, &flows));
        assert!(uiaa.open(Some(&id), "register", None).is_err(), "consumed");
    }
}
