//! Event relationships: the index of events relating to an event (`m.relates_to` with a
//! `rel_type`), thread roots, the `/relations` and `/threads` reads, and the server-side
//! aggregations clients rely on (`unsigned.m.relations`: the latest edit, thread summaries).

use ruma::{EventId, OwnedEventId, OwnedUserId, RoomId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    error::Result,
    service::{
        cache::Cache,
        rooms::{EventLocation, Pdu, RoomService, read::Direction},
        users::sessions::Session,
    },
    storage::{Batch, Db, Table, codec, tables},
};

/// One indexed relation (key: parent event id ‖ child position).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Relation {
    pub child: OwnedEventId,
    pub rel_type: String,
    pub event_type: String,
    pub sender: OwnedUserId,
}

/// A thread root (key: room id ‖ root event id).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ThreadRecord {
    pub latest_event: Option<OwnedEventId>,
    pub latest_count: u64,
    pub count: u64,
    pub participants: Vec<OwnedUserId>,
}

/// The relation an event declares, if any: (rel_type, parent).
pub fn relation_of(pdu: &Pdu) -> Option<(String, OwnedEventId)> {
    relation_in(&pdu.content_value())
}

/// `(rel_type, parent)` of an event's content.
pub fn relation_in(content: &Value) -> Option<(String, OwnedEventId)> {
    let relates_to = content.get("m.relates_to")?;
    let rel_type = relates_to.get("rel_type")?.as_str()?.to_owned();
    let parent = EventId::parse(relates_to.get("event_id")?.as_str()?).ok()?;
    Some((rel_type, parent))
}

/// A page of `/relations` or `/threads`.
pub struct RelationsPage {
    pub chunk: Vec<Value>,
    pub next_batch: Option<String>,
}

/// The relation and thread indexes, and the cache of events known to have no relations.
pub struct RelationIndex {
    relations: Table<(String, u64), Relation>,
    threads: Table<(String, String), ThreadRecord>,
    /// Whether an event (by id) is the parent of any relation; a new relation invalidates its
    /// parent's entry.
    has_relations: Cache<String, bool>,
}

impl RelationIndex {
    pub fn new(db: &Db, cached: usize) -> Self {
        Self {
            relations: db.open_table(tables::RELATIONS),
            threads: db.open_table(tables::THREADS),
            has_relations: Cache::new(cached),
        }
    }

    /// Indexes a new event's relation (and thread bookkeeping) in its write batch.
    pub(super) fn index(&self, batch: &mut Batch, pdu: &Pdu, count: u64) -> Result<()> {
        let Some((rel_type, parent)) = relation_of(pdu) else {
            return Ok(());
        };
        let relation = Relation {
            child: pdu.event_id.clone(),
            rel_type: rel_type.clone(),
            event_type: pdu.kind.to_string(),
            sender: pdu.sender.clone(),
        };
        self.relations
            .put(batch, &(parent.to_string(), count), &relation);
        if rel_type == "m.thread" {
            let key = (pdu.room_id.to_string(), parent.to_string());
            let mut thread = self.threads.get(&key)?.unwrap_or_default();
            thread.latest_event = Some(pdu.event_id.clone());
            thread.latest_count = count;
            thread.count += 1;
            if !thread.participants.contains(&pdu.sender) {
                thread.participants.push(pdu.sender.clone());
            }
            self.threads.put(batch, &key, &thread);
        }
        Ok(())
    }

    /// Relations of `parent`, oldest first.
    pub(super) fn relations_of(&self, parent: &EventId) -> Result<Vec<(u64, Relation)>> {
        Ok(self
            .relations
            .scan_prefix(&codec::prefix(parent.as_str()))?
            .into_iter()
            .map(|((_, count), relation)| (count, relation))
            .collect())
    }

    /// Whether `parent` may have relations (`false`: known to have none), and the cache
    /// epoch to record what a scan finds.
    fn may_have_relations(&self, parent: &EventId) -> (bool, u64) {
        let lookup = self.has_relations.get(&parent.to_string());
        (lookup.value != Some(false), lookup.epoch)
    }

    /// Forgets what is known about `parent` (it just gained a relation).
    pub(super) fn invalidate(&self, parent: &EventId) {
        self.has_relations.invalidate(&parent.to_string());
    }

    /// A thread's record.
    fn thread(&self, room_id: &RoomId, root: &EventId) -> Result<Option<ThreadRecord>> {
        Ok(self.threads.get(&(room_id.to_string(), root.to_string()))?)
    }

    /// Every thread root of a room.
    fn threads_of(&self, room_id: &RoomId) -> Result<Vec<(String, ThreadRecord)>> {
        Ok(self
            .threads
            .scan_prefix(&codec::prefix(room_id.as_str()))?
            .into_iter()
            .map(|((_, root), thread)| (root, thread))
            .collect())
    }
}

impl RoomService {
    /// `unsigned.m.relations` for an event as `viewer` sees it: the latest edit by the original
    /// sender (`m.replace`) and the thread summary (`m.thread`).
    pub fn aggregations(&self, pdu: &Pdu, viewer: Option<&Session>) -> Result<Option<Value>> {
        // Most events have no relations: remember that instead of scanning for them each time.
        let (may_have, epoch) = self.relation_index.may_have_relations(&pdu.event_id);
        if !may_have {
            return Ok(None);
        }
        let relations = self.relation_index.relations_of(&pdu.event_id)?;
        self.relation_index.has_relations.insert(
            pdu.event_id.to_string(),
            !relations.is_empty(),
            epoch,
        );
        if relations.is_empty() {
            return Ok(None);
        }
        let mut aggregated = serde_json::Map::new();
        let latest_edit = relations
            .iter()
            .rev()
            .filter(|(_, r)| {
                r.rel_type == "m.replace"
                    && r.sender == pdu.sender
                    && r.event_type == pdu.kind.to_string()
            })
            .find_map(|(_, r)| {
                self.timeline
                    .get_pdu(&r.child)
                    .ok()
                    .flatten()
                    .filter(|edit| {
                        !edit
                            .content_value()
                            .as_object()
                            .is_none_or(|c| c.is_empty())
                    })
            });
        if let Some(edit) = latest_edit {
            aggregated.insert(
                "m.replace".into(),
                edit.to_client_format(crate::util::now_millis()),
            );
        }
        if let Some(thread) = self.relation_index.thread(&pdu.room_id, &pdu.event_id)?
            && let Some(latest) = &thread.latest_event
            && let Some(latest) = self.timeline.get_pdu(latest)?
        {
            let participated = viewer.is_some_and(|v| {
                thread.participants.contains(&v.user_id) || pdu.sender == v.user_id
            });
            aggregated.insert(
                "m.thread".into(),
                json!({
                    "latest_event": latest.to_client_format(crate::util::now_millis()),
                    "count": thread.count,
                    "current_user_participated": participated,
                }),
            );
        }
        Ok((!aggregated.is_empty()).then_some(Value::Object(aggregated)))
    }

    /// `GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]`
    #[allow(clippy::too_many_arguments)]
    pub fn relations_for_user(
        &self,
        session: &Session,
        room_id: &RoomId,
        parent: &EventId,
        rel_type: Option<&str>,
        event_type: Option<&str>,
        from: Option<u64>,
        to: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<RelationsPage> {
        // The parent must be visible; this also checks room membership.
        self.event_for_user(session, room_id, parent)?;
        let mut relations = self.relation_index.relations_of(parent)?;
        if direction == Direction::Backward {
            relations.reverse();
        }
        let mut chunk = Vec::new();
        let mut next_batch = None;
        for (count, relation) in relations {
            let in_range = match direction {
                Direction::Backward => {
                    from.is_none_or(|f| count <= f) && to.is_none_or(|t| count > t)
                }
                Direction::Forward => {
                    from.is_none_or(|f| count > f) && to.is_none_or(|t| count <= t)
                }
            };
            if !in_range
                || rel_type.is_some_and(|r| r != relation.rel_type)
                || event_type.is_some_and(|e| e != relation.event_type)
            {
                continue;
            }
            if chunk.len() >= limit {
                next_batch = Some(match direction {
                    Direction::Backward => (count).to_string(),
                    Direction::Forward => (count - 1).to_string(),
                });
                break;
            }
            let Some(location) = self.timeline.location(&relation.child)? else {
                continue;
            };
            let Some(pdu) = self.timeline.pdu_of(&location)? else {
                continue;
            };
            if self.user_can_see(&session.user_id, &pdu, &location)? {
                chunk.push(self.client_event_with_aggregations(&pdu, &location, Some(session))?);
            }
        }
        Ok(RelationsPage { chunk, next_batch })
    }

    /// `GET /rooms/{roomId}/threads`: thread roots by latest activity; `participated` keeps
    /// those the user took part in. The token is an offset (`from`).
    pub fn threads_for_user(
        &self,
        session: &Session,
        room_id: &RoomId,
        participated_only: bool,
        offset: Option<usize>,
        limit: usize,
    ) -> Result<RelationsPage> {
        let offset = offset.unwrap_or(0);
        let mut threads = self.relation_index.threads_of(room_id)?;
        threads.sort_by_key(|(_, thread)| std::cmp::Reverse(thread.latest_count));
        let mut chunk = Vec::new();
        for (position, (root, thread)) in threads.into_iter().enumerate().skip(offset) {
            if chunk.len() >= limit {
                return Ok(RelationsPage {
                    chunk,
                    next_batch: Some(position.to_string()),
                });
            }
            let Ok(root) = EventId::parse(&root) else {
                continue;
            };
            let Some(location) = self.timeline.location(&root)? else {
                continue;
            };
            let Some(pdu) = self.timeline.pdu_of(&location)? else {
                continue;
            };
            let participated =
                thread.participants.contains(&session.user_id) || pdu.sender == session.user_id;
            if (participated_only && !participated)
                || !self.user_can_see(&session.user_id, &pdu, &location)?
            {
                continue;
            }
            chunk.push(self.client_event_with_aggregations(&pdu, &location, Some(session))?);
        }
        Ok(RelationsPage {
            chunk,
            next_batch: None,
        })
    }

    /// The client format plus `unsigned.m.relations`.
    pub fn client_event_with_aggregations(
        &self,
        pdu: &Pdu,
        location: &EventLocation,
        viewer: Option<&Session>,
    ) -> Result<Value> {
        let mut event = self.client_event(pdu, location, viewer);
        if let Some(relations) = self.aggregations(pdu, viewer)? {
            event["unsigned"]["m.relations"] = relations;
        }
        Ok(event)
    }
}
