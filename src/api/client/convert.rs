//! Conversions the client handlers share: ruma's raw JSON to values and back, pagination
//! tokens, and room event filters with the caller's ignored users hidden. One copy each, so
//! every endpoint answers a bad token or a bad body the same way.

use std::str::FromStr;

use ruma::{UserId, api::client::filter::RoomEventFilter, serde::Raw};
use serde::Serialize;
use serde_json::Value;

use crate::{
    error::{Error, Result},
    service::{Services, rooms::filter::EventFilter},
};

/// A client's raw JSON as a value (`M_BAD_JSON` when it does not parse).
pub fn raw_to_value<T>(raw: &Raw<T>) -> Result<Value> {
    serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))
}

/// Event content from a client: raw JSON that must be an object.
pub fn raw_object<T>(raw: &Raw<T>) -> Result<Value> {
    let value = raw_to_value(raw)?;
    if !value.is_object() {
        return Err(Error::bad_json("Event content must be a JSON object"));
    }
    Ok(value)
}

/// A typed ruma value as JSON, for services that read JSON documents.
pub fn to_value(value: &impl Serialize) -> Result<Value> {
    serde_json::to_value(value).map_err(Error::internal)
}

/// A rendered event as a raw event of a ruma response.
pub fn raw_event<T>(event: &Value) -> Result<Raw<T>> {
    serde_json::value::to_raw_value(event)
        .map(Raw::from_json)
        .map_err(Error::internal)
}

/// Rendered events as the raw events of a ruma response.
pub fn raw_events<T>(events: Vec<Value>) -> Result<Vec<Raw<T>>> {
    events.iter().map(raw_event).collect()
}

/// A pagination token (`name` says which, for the error): a number — a stream position, or
/// an offset where the endpoint pages by offset.
pub fn token<N: FromStr>(name: &str, token: Option<&str>) -> Result<Option<N>> {
    token
        .map(|t| {
            t.parse()
                .map_err(|_| Error::invalid_param(format!("Invalid {name} token {t:?}")))
        })
        .transpose()
}

/// The filter a room event read applies for `user`: theirs, with the events of the users they
/// ignore hidden (spec: `m.ignored_user_list`). Reads account data: blocking.
pub fn visible_events_filter(
    services: &Services,
    user: &UserId,
    filter: &RoomEventFilter,
) -> Result<EventFilter> {
    let mut filter = EventFilter::from_json(&to_value(filter)?);
    filter
        .not_senders
        .extend(services.account_data.ignored_users(user)?);
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_numbers_or_a_named_error() {
        assert_eq!(token::<u64>("since", Some("42")).unwrap(), Some(42));
        assert_eq!(token::<u64>("since", None).unwrap(), None);
        let error = token::<usize>("from", Some("x")).unwrap_err();
        assert!(
            matches!(&error, Error::Matrix { errcode: "M_INVALID_PARAM", message, .. } if message.contains("from token")),
            "{error:?}"
        );
    }
}
