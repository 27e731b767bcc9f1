//! Joins across servers. As the resident server: `make_join` hands out a template our state
//! allows, `send_join` accepts the signed join through the pipeline, relays it to the room's
//! other servers and answers with the state and auth chain. As the joining server: ask each
//! candidate server in turn, check every event it returns, and store the room.

use std::sync::Arc;

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedRoomId, OwnedServerName, RoomId, RoomVersionId,
    UserId,
    api::federation::membership::{create_join_event, prepare_join_event},
};
use serde_json::{json, value::RawValue};

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{
            Pdu,
            create::member_content,
            remote::{CheckedPdu, check_pdu, signature_keys},
            rules_for,
        },
    },
};

/// The room versions this server can join.
fn supported_versions() -> Vec<RoomVersionId> {
    (1..=12)
        .filter_map(|v| RoomVersionId::try_from(v.to_string().as_str()).ok())
        .filter(|v| v.rules().is_some())
        .collect()
}

impl Services {
    /// `make_join`: a template for `user` of server `origin`. Blocking.
    pub fn make_join(
        &self,
        origin: &ruma::ServerName,
        room_id: &RoomId,
        user: &UserId,
        versions: &[RoomVersionId],
    ) -> Result<(RoomVersionId, Box<RawValue>)> {
        if user.server_name() != origin {
            return Err(Error::forbidden(
                "The user does not belong to the requesting server",
            ));
        }
        let (_, room) = self.rooms.registry.known_room(room_id)?;
        if !versions.contains(&room.version) {
            return Err(Error::Matrix {
                status: http::StatusCode::BAD_REQUEST,
                errcode: "M_INCOMPATIBLE_ROOM_VERSION",
                message: format!(
                    "The room has version {}, which the server does not support",
                    room.version
                ),
                extra: Some(json!({ "room_version": room.version })),
            });
        }
        let (version, template) =
            self.rooms
                .join_template(room_id, user, json!({ "membership": "join" }))?;
        let raw = serde_json::value::to_raw_value(&template).map_err(Error::internal)?;
        Ok((version, raw))
    }

    /// `send_join`: accepts a remote user's signed join and answers with the room's state
    /// before it and the auth chain.
    pub async fn send_join(
        self: &Arc<Self>,
        origin: &ruma::ServerName,
        room_id: &RoomId,
        pdu: &RawValue,
    ) -> Result<create_join_event::v2::RoomState> {
        let object: CanonicalJsonObject = serde_json::from_str(pdu.get())
            .map_err(|e| Error::bad_json(format!("The join is not an event: {e}")))?;
        let field = |name: &str| object.get(name).and_then(CanonicalJsonValue::as_str);
        let membership = match object.get("content") {
            Some(CanonicalJsonValue::Object(content)) => content
                .get("membership")
                .and_then(CanonicalJsonValue::as_str),
            _ => None,
        };
        if field("type") != Some("m.room.member") || membership != Some("join") {
            return Err(Error::bad_json("send_join takes a join event"));
        }
        let sender = field("sender")
            .and_then(|s| UserId::parse(s).ok())
            .ok_or_else(|| Error::bad_json("The join has no valid sender"))?;
        if field("state_key") != Some(sender.as_str()) {
            return Err(Error::bad_json("A join's state key is its sender"));
        }
        if sender.server_name() != origin {
            return Err(Error::forbidden(
                "The joining user does not belong to the requesting server",
            ));
        }
        let keys = self.federation.key_map(signature_keys(&object)).await;
        let room_id = room_id.to_owned();
        self.blocking(move |s| {
            let (_, room) = s.rooms.registry.known_room(&room_id)?;
            let rules = rules_for(&room.version)?;
            let checked = check_pdu(object, &room_id, &rules, &keys)?;
            let join = s.rooms.accept_remote(&room_id, checked, true)?;
            s.join_answer(&join)
        })
        .await
    }

    /// The state before `join` and the auth chain of it and of the join, as `send_join`
    /// answers.
    fn join_answer(&self, join: &Pdu) -> Result<create_join_event::v2::RoomState> {
        let state_ids = self.rooms.state_ids_before(&join.event_id)?;
        let mut chain_of = state_ids.clone();
        chain_of.push(join.event_id.clone());
        let chain_ids = self.rooms.auth_chain(&chain_of)?;
        let form = |ids: &[ruma::OwnedEventId]| -> Result<Vec<Box<RawValue>>> {
            let mut events = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(event) = self.rooms.federation_form(id)? {
                    events.push(event);
                }
            }
            Ok(events)
        };
        let mut answer = create_join_event::v2::RoomState::new();
        answer.state = form(&state_ids)?;
        answer.auth_chain = form(&chain_ids)?;
        Ok(answer)
    }

    /// Joins a local user to a room: here when this server is in the room, else through
    /// another server — those the client named (`via`), the servers still in the room, and
    /// the server in the room's id.
    pub async fn join_anywhere(
        self: &Arc<Self>,
        user: &UserId,
        room_id: &RoomId,
        via: &[OwnedServerName],
        reason: Option<String>,
        content: serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        let (known, servers) = {
            let room_id = room_id.to_owned();
            self.blocking(move |s| match s.rooms.registry.room(&room_id)? {
                Some((short_room, _)) => {
                    Ok((true, s.rooms.room_servers(short_room, &room_id)?.to_vec()))
                }
                None => Ok((false, Vec::new())),
            })
            .await?
        };
        let ours = self.federation.server_name();
        let resident = servers.iter().any(|server| server == ours);
        if !known && via.is_empty() && room_id.server_name().is_none_or(|server| server == ours) {
            return Err(Error::not_found("This server does not know the room"));
        }
        if resident || (known && servers.is_empty()) {
            let (user, room_id) = (user.to_owned(), room_id.to_owned());
            return self
                .blocking(move |s| s.join_with_content(&user, &room_id, reason, content))
                .await;
        }
        if !self.config.federation.enabled {
            return Err(Error::not_found(
                "The room is on other servers, and this server does not federate",
            ));
        }
        let mut candidates: Vec<OwnedServerName> = via.to_vec();
        candidates.extend(servers);
        if let Some(server) = room_id.server_name() {
            candidates.push(server.to_owned());
        }
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|server| seen.insert(server.clone()));
        self.join_remote(user, room_id, &candidates).await
    }

    /// Joins `user` to a room on other servers, asking `candidates` in turn. Returns once
    /// the room is stored with the user joined.
    pub async fn join_remote(
        self: &Arc<Self>,
        user: &UserId,
        room_id: &RoomId,
        candidates: &[OwnedServerName],
    ) -> Result<()> {
        let mut last_error = Error::not_found("No server to join the room through");
        for server in candidates {
            if server == self.federation.server_name() {
                continue;
            }
            match self.join_through(user, room_id, server).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::info!(%server, %room_id, error = %e, "remote join failed");
                    last_error = e;
                }
            }
        }
        Err(last_error)
    }

    async fn join_through(
        self: &Arc<Self>,
        user: &UserId,
        room_id: &RoomId,
        server: &ruma::ServerName,
    ) -> Result<()> {
        let mut request = prepare_join_event::v1::Request::new(room_id.to_owned(), user.to_owned());
        request.ver = supported_versions();
        let template = self.federation.client.send(server, request).await?;
        let version = template.room_version.unwrap_or(RoomVersionId::V1);
        let rules = rules_for(&version)?;
        let mut object: CanonicalJsonObject =
            serde_json::from_str(template.event.get()).map_err(|e| {
                Error::remote_failure(format!("{server} sent a bad join template: {e}"))
            })?;
        // The membership content is ours to decide; the resident server chose the rest.
        let profile = {
            let user = user.to_owned();
            self.blocking(move |s| Ok(s.profiles.get(&user)?.unwrap_or_default()))
                .await?
        };
        let mut content = member_content("join", &profile, false);
        if let Some(CanonicalJsonValue::Object(template_content)) = object.get("content")
            && let Some(authoriser) = template_content.get("join_authorised_via_users_server")
        {
            content["join_authorised_via_users_server"] =
                serde_json::to_value(authoriser).map_err(Error::internal)?;
        }
        object.insert(
            "content".into(),
            ruma::canonical_json::to_canonical_value(content).map_err(Error::internal)?,
        );
        object.insert(
            "sender".into(),
            CanonicalJsonValue::String(user.to_string()),
        );
        object.insert(
            "state_key".into(),
            CanonicalJsonValue::String(user.to_string()),
        );
        object.insert(
            "origin".into(),
            CanonicalJsonValue::String(self.federation.server_name().to_string()),
        );
        let (event_id, object) = {
            let rules = rules.clone();
            self.blocking(move |s| {
                let mut object = object;
                let event_id = s.rooms.sign_template(&mut object, &rules)?;
                Ok((event_id, object))
            })
            .await?
        };
        let mut wire = object.clone();
        wire.remove("event_id");
        if rules.event_format.require_event_id {
            wire.insert(
                "event_id".into(),
                CanonicalJsonValue::String(event_id.to_string()),
            );
        }
        let pdu = serde_json::value::to_raw_value(&wire).map_err(Error::internal)?;
        let request =
            create_join_event::v2::Request::new(room_id.to_owned(), event_id.clone(), pdu);
        let answer = self
            .federation
            .client
            .send(server, request)
            .await?
            .room_state;
        // The resident server's copy (signed by it too, for restricted joins) wins.
        let join_object = match &answer.event {
            Some(event) => serde_json::from_str(event.get())
                .map_err(|e| Error::remote_failure(format!("{server} sent a bad join: {e}")))?,
            None => wire,
        };
        let parse = |raw: &RawValue| -> Result<CanonicalJsonObject> {
            serde_json::from_str(raw.get())
                .map_err(|e| Error::remote_failure(format!("{server} sent a bad event: {e}")))
        };
        let state: Vec<CanonicalJsonObject> = answer
            .state
            .iter()
            .map(|e| parse(e))
            .collect::<Result<_>>()?;
        let auth_chain: Vec<CanonicalJsonObject> = answer
            .auth_chain
            .iter()
            .map(|e| parse(e))
            .collect::<Result<_>>()?;
        let signers: Vec<(OwnedServerName, Option<String>)> = state
            .iter()
            .chain(&auth_chain)
            .chain(std::iter::once(&join_object))
            .flat_map(signature_keys)
            .collect();
        let keys = self.federation.key_map(signers).await;
        let room_id: OwnedRoomId = room_id.to_owned();
        self.blocking(move |s| {
            let check = |object: CanonicalJsonObject| -> Result<CheckedPdu> {
                check_pdu(object, &room_id, &rules, &keys).map_err(|e| {
                    Error::remote_failure(format!(
                        "the room's state holds an event that fails its checks: {e}"
                    ))
                })
            };
            let state: Vec<CheckedPdu> = state.into_iter().map(check).collect::<Result<_>>()?;
            let auth_chain: Vec<CheckedPdu> =
                auth_chain.into_iter().map(check).collect::<Result<_>>()?;
            let join = check(join_object)?;
            if join.event_id != event_id {
                return Err(Error::remote_failure(
                    "the resident server changed our join event",
                ));
            }
            s.rooms
                .store_joined_room(&room_id, version, auth_chain, state, join)?;
            Ok(())
        })
        .await
    }
}
