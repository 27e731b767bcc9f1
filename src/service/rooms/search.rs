//! Server-side search (`POST /search`): an inverted index of lowercase word tokens per room,
//! written in the same batch as the event and removed when the event is redacted; queries
//! intersect the tokens' posting lists and check visibility on every hit.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{OwnedRoomId, RoomId};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    service::{
        rooms::{Pdu, RoomService, read::EventFilter},
        users::sessions::Session,
    },
    storage::{Batch, Db, Table, codec, keys::SearchKey, tables},
};

/// Searchable fields by event type.
const FIELDS: &[(&str, &str)] = &[
    ("m.room.message", "content.body"),
    ("m.room.name", "content.name"),
    ("m.room.topic", "content.topic"),
];

/// Longest token indexed, in bytes.
const MAX_TOKEN_BYTES: usize = 64;
/// Most hits examined per query (before visibility filtering).
const MAX_HITS: usize = 10_000;

/// Splits text into lowercase alphanumeric tokens.
pub fn tokenize(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES)
        .map(str::to_lowercase)
        .collect()
}

/// The searchable (field, text) pairs of an event.
fn searchable(pdu: &Pdu) -> Vec<(&'static str, String)> {
    let kind = pdu.kind.to_string();
    let content = pdu.content_value();
    FIELDS
        .iter()
        .filter(|(event_type, _)| *event_type == kind)
        .filter_map(|(_, field)| {
            let key = field.strip_prefix("content.")?;
            Some((*field, content.get(key)?.as_str()?.to_owned()))
        })
        .collect()
}

fn index_key(room_id: &RoomId, token: &str, count: u64) -> SearchKey {
    SearchKey {
        room: room_id.to_string(),
        token: token.to_owned(),
        count,
    }
}

/// Query options for [`RoomService::search`].
pub struct SearchQuery {
    pub term: String,
    pub keys: Vec<String>,
    pub filter: EventFilter,
    pub rooms: Option<Vec<OwnedRoomId>>,
    pub not_rooms: Vec<OwnedRoomId>,
    pub limit: usize,
    pub order_by_rank: bool,
    pub offset: usize,
}

/// One hit.
pub struct SearchHit {
    pub rank: f64,
    pub room_id: OwnedRoomId,
    pub count: u64,
    pub event: Value,
}

/// Results with the total and the next offset.
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    pub total: usize,
    pub next_offset: Option<usize>,
    pub highlights: Vec<String>,
}

/// The full-text index: owns its table; `persist` adds every event to it in the event's
/// batch, redaction removes the redacted event's tokens.
pub struct SearchIndex {
    table: Table<SearchKey, Vec<String>>,
}

impl SearchIndex {
    pub fn new(db: &Db) -> Self {
        Self {
            table: db.open_table(tables::SEARCH_INDEX),
        }
    }

    /// Adds an event's tokens to the index (in its write batch).
    pub(super) fn index(&self, batch: &mut Batch, pdu: &Pdu, count: u64) {
        let mut fields_by_token: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (field, text) in searchable(pdu) {
            for token in tokenize(&text) {
                fields_by_token.entry(token).or_default().push(field);
            }
        }
        for (token, fields) in fields_by_token {
            let fields: Vec<String> = fields.into_iter().map(str::to_owned).collect();
            self.table
                .put(batch, &index_key(&pdu.room_id, &token, count), &fields);
        }
    }

    /// Removes an event's tokens (redaction).
    pub(super) fn unindex(&self, batch: &mut Batch, pdu: &Pdu, count: u64) {
        for (_, text) in searchable(pdu) {
            for token in tokenize(&text) {
                self.table
                    .delete(batch, &index_key(&pdu.room_id, &token, count));
            }
        }
    }

    /// Positions of events in `room` holding every token of `tokens` in one of `keys`.
    pub(crate) fn matching_positions(
        &self,
        room_id: &RoomId,
        tokens: &BTreeSet<String>,
        keys: &[String],
    ) -> Result<Vec<u64>> {
        let mut result: Option<BTreeSet<u64>> = None;
        for token in tokens {
            let prefix = codec::prefix_of(&[room_id.as_str(), token]);
            let positions: BTreeSet<u64> = self
                .table
                .scan_prefix(&prefix)?
                .into_iter()
                .filter(|(_, fields)| fields.iter().any(|f| keys.contains(f)))
                .map(|(key, _)| key.count)
                .collect();
            result = Some(match result {
                Some(previous) => previous.intersection(&positions).copied().collect(),
                None => positions,
            });
            if result.as_ref().is_some_and(BTreeSet::is_empty) {
                break;
            }
        }
        Ok(result.map(|r| r.into_iter().collect()).unwrap_or_default())
    }
}

impl RoomService {
    /// Searches the rooms the user is joined to.
    pub fn search(&self, session: &Session, query: &SearchQuery) -> Result<SearchResults> {
        let tokens = tokenize(&query.term);
        if tokens.is_empty() {
            return Err(Error::bad_json("search_term has no searchable words"));
        }
        let mut rooms: Vec<OwnedRoomId> = self
            .members
            .rooms_of(&session.user_id)?
            .into_iter()
            .filter(|(_, m)| m.membership == "join")
            .map(|(room, _)| room)
            .filter(|room| {
                query
                    .rooms
                    .as_ref()
                    .is_none_or(|wanted| wanted.contains(room))
            })
            .filter(|room| !query.not_rooms.contains(room))
            .collect();
        rooms.sort();
        let mut hits = Vec::new();
        for room_id in rooms {
            let Some((short_room, _)) = self.registry.room(&room_id)? else {
                continue;
            };
            for count in self
                .search
                .matching_positions(&room_id, &tokens, &query.keys)?
            {
                if hits.len() >= MAX_HITS {
                    break;
                }
                let Some(pdu) = self.timeline.pdu_at(short_room, count)? else {
                    continue;
                };
                let Some(location) = self.timeline.location(&pdu.event_id)? else {
                    continue;
                };
                if !query.filter.matches(&pdu)
                    || !self.user_can_see(&session.user_id, &pdu, &location)?
                {
                    continue;
                }
                let text: String = searchable(&pdu)
                    .into_iter()
                    .map(|(_, t)| t.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                let rank = tokens
                    .iter()
                    .map(|t| text.matches(t.as_str()).count())
                    .sum::<usize>() as f64;
                let event = self.client_event_with_aggregations(&pdu, &location, Some(session))?;
                hits.push(SearchHit {
                    rank,
                    room_id: room_id.clone(),
                    count,
                    event,
                });
            }
        }
        if query.order_by_rank {
            hits.sort_by(|a, b| b.rank.total_cmp(&a.rank).then(b.count.cmp(&a.count)));
        } else {
            hits.sort_by_key(|hit| std::cmp::Reverse(hit.count));
        }
        let total = hits.len();
        let page: Vec<SearchHit> = hits
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .collect();
        // A full page gets a `next_batch` even when it ends exactly at the last hit; the next
        // request then answers no results and no token. That is what Synapse does and what
        // clients and Complement's TestSearch expect (a page shorter than the limit is the end).
        let next_offset =
            (query.limit > 0 && page.len() == query.limit).then_some(query.offset + page.len());
        Ok(SearchResults {
            hits: page,
            total,
            next_offset,
            highlights: tokens.into_iter().collect(),
        })
    }

    /// The current state events of a room (for `include_state`).
    pub fn search_room_state(&self, session: &Session, room_id: &RoomId) -> Result<Vec<Value>> {
        self.state_for_user(&session.user_id, room_id)
    }
}

/// Default fields searched.
pub fn default_keys() -> Vec<String> {
    FIELDS
        .iter()
        .map(|(_, field)| (*field).to_owned())
        .collect()
}

/// A search hit's JSON with optional context.
pub fn hit_json(hit: &SearchHit, context: Option<Value>) -> Value {
    let mut result = json!({ "rank": hit.rank, "result": hit.event });
    if let Some(context) = context {
        result["context"] = context;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lowercase_words() {
        let tokens = tokenize("Hello, WORLD! hello-again ünïcode 42");
        let expected: BTreeSet<String> = ["hello", "world", "again", "ünïcode", "42"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(tokens, expected);
    }
}
