//! Each user's push rules: the spec's server-default ruleset until the user changes it, then
//! the user's own copy. Every change takes a stream position, so `/sync` hands the new rules
//! out as the `m.push_rules` account data exactly once, and wakes the user's syncs.

use std::{
    collections::HashSet,
    sync::{Arc, RwLock, RwLockReadGuard},
};

use ruma::{
    OwnedUserId, RoomId, UserId,
    push::{
        AnyPushRuleRef, InsertPushRuleError, NewConditionalPushRule, NewPushRule,
        NewSimplePushRule, PushCondition, RemovePushRuleError, RuleKind, Ruleset,
    },
};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    service::{cache::Cache, keyed_locks::KeyedLocks, notifier::Notifier},
    storage::{Db, Table, tables},
};

/// How many users' rulesets are kept parsed in memory (a few KiB each).
const CACHED_RULESETS: usize = 4096;

/// A user's stored push rules.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PushRulesRecord {
    pub global: Ruleset,
    /// Stream position of the last change (0: never changed, the server defaults).
    pub position: u64,
}

/// Owns the push-rules table.
pub struct PushRules {
    db: Db,
    table: Table<String, PushRulesRecord>,
    /// Parsed rules per user: event evaluation reads them for every member of a room.
    cache: Cache<String, Arc<PushRulesRecord>>,
    /// One writer per user: a change reads, edits and writes the whole ruleset.
    locks: KeyedLocks<OwnedUserId>,
    notifier: Arc<Notifier>,
    /// Users with rules of their own (a stored row): everyone else is on the server defaults,
    /// which evaluation shares between them. A user is added before their row is written.
    customized: RwLock<HashSet<OwnedUserId>>,
}

impl PushRules {
    pub fn new(db: &Db, notifier: Arc<Notifier>) -> Result<Self> {
        let table: Table<String, PushRulesRecord> = db.open_table(tables::PUSH_RULES);
        let mut customized = HashSet::new();
        for user in table.keys() {
            if let Ok(user) = OwnedUserId::try_from(user?) {
                customized.insert(user);
            }
        }
        Ok(Self {
            table,
            cache: Cache::new(CACHED_RULESETS),
            locks: KeyedLocks::default(),
            notifier,
            db: db.clone(),
            customized: RwLock::new(customized),
        })
    }

    /// The users whose rules are their own (see `customized`); held while one event is
    /// evaluated.
    pub fn customized_users(&self) -> RwLockReadGuard<'_, HashSet<OwnedUserId>> {
        self.customized.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The user's rules and the position of their last change.
    pub fn record(&self, user: &UserId) -> Result<Arc<PushRulesRecord>> {
        let lookup = self.cache.get(&user.as_str().to_owned());
        if let Some(record) = lookup.value {
            return Ok(record);
        }
        let record = Arc::new(match self.table.get(&user.as_str().to_owned())? {
            Some(record) => record,
            None => PushRulesRecord {
                global: super::defaults::server_default(user),
                position: 0,
            },
        });
        self.cache
            .insert(user.as_str().to_owned(), record.clone(), lookup.epoch);
        Ok(record)
    }

    /// The rules if they changed in `(since, until]` (always, for an initial sync).
    pub fn changed_since(
        &self,
        user: &UserId,
        since: Option<u64>,
        until: u64,
    ) -> Result<Option<Arc<PushRulesRecord>>> {
        let record = self.record(user)?;
        let changed = match since {
            None => true,
            Some(since) => record.position > since && record.position <= until,
        };
        Ok(changed.then_some(record))
    }

    /// Applies `change` to the user's rules and stores them; nothing is stored when it fails.
    pub fn edit<T>(
        &self,
        user: &UserId,
        change: impl FnOnce(&mut Ruleset) -> Result<T>,
    ) -> Result<T> {
        let _guard = self.locks.lock(user);
        let mut rules = self.record(user)?.global.clone();
        let outcome = change(&mut rules)?;
        let stream = self.db.next_stream_position()?;
        let record = PushRulesRecord {
            global: rules,
            position: stream.position,
        };
        self.customized
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_owned());
        let mut batch = self.db.batch();
        self.table
            .put(&mut batch, &user.as_str().to_owned(), &record);
        self.db.write(batch)?;
        let record = Arc::new(record);
        self.cache
            .update(&user.as_str().to_owned(), |_| record.clone());
        drop(stream);
        self.notifier.wake([user]);
        Ok(outcome)
    }

    /// Gives the rules a user set for `old` to `new` as well (room upgrades): the room rule
    /// and every rule whose conditions name the old room. Nothing is written when none does.
    pub fn copy_room_rules(&self, user: &UserId, old: &RoomId, new: &RoomId) -> Result<()> {
        let copies = room_rule_copies(&self.record(user)?.global, old, new);
        if copies.is_empty() {
            return Ok(());
        }
        self.edit(user, |rules| {
            for rule in copies {
                // A copy that cannot be placed (e.g. the user already has a rule of that id)
                // is skipped rather than failing the join.
                let _ = rules.insert(rule, None, None);
            }
            Ok(())
        })
    }
}

/// The user-defined rules of `rules` that name room `old`, rewritten to name `new`.
fn room_rule_copies(rules: &Ruleset, old: &RoomId, new: &RoomId) -> Vec<NewPushRule> {
    let mut copies = Vec::new();
    for rule in rules.iter() {
        if rule.rule_id().starts_with('.') {
            continue;
        }
        match rule {
            AnyPushRuleRef::Room(room_rule) if room_rule.rule_id == old => {
                copies.push(NewPushRule::Room(NewSimplePushRule::new(
                    new.to_owned(),
                    room_rule.actions.clone(),
                )));
            }
            AnyPushRuleRef::Override(conditional) | AnyPushRuleRef::Underride(conditional) => {
                let names_old = conditional.conditions.iter().any(|c| {
                    matches!(c, PushCondition::EventMatch(m) if m.key == "room_id" && m.pattern == old.as_str())
                });
                if !names_old {
                    continue;
                }
                let conditions = conditional
                    .conditions
                    .iter()
                    .map(|c| match c {
                        PushCondition::EventMatch(m)
                            if m.key == "room_id" && m.pattern == old.as_str() =>
                        {
                            let mut m = m.clone();
                            m.pattern = new.to_string();
                            PushCondition::EventMatch(m)
                        }
                        other => other.clone(),
                    })
                    .collect();
                let rule_id = conditional.rule_id.replace(old.as_str(), new.as_str());
                let copy =
                    NewConditionalPushRule::new(rule_id, conditions, conditional.actions.clone());
                copies.push(match rule {
                    AnyPushRuleRef::Override(_) => NewPushRule::Override(copy),
                    _ => NewPushRule::Underride(copy),
                });
            }
            _ => {}
        }
    }
    copies
}

/// The client error for a rule that could not be inserted.
pub fn insert_error(error: InsertPushRuleError) -> Error {
    match error {
        InsertPushRuleError::UnknownRuleId => {
            Error::not_found("The rule named in before or after does not exist")
        }
        other => Error::invalid_param(other.to_string()),
    }
}

/// The client error for a rule that could not be removed.
pub fn remove_error(error: RemovePushRuleError) -> Error {
    match error {
        RemovePushRuleError::ServerDefault => {
            Error::invalid_param("Server-default rules cannot be deleted")
        }
        _ => Error::not_found("No such push rule"),
    }
}

/// Refuses rule kinds the spec does not define (`GET /pushrules/global/foo/…`).
pub fn known_kind(kind: &RuleKind) -> Result<()> {
    match kind {
        RuleKind::Override
        | RuleKind::Underride
        | RuleKind::Sender
        | RuleKind::Room
        | RuleKind::Content => Ok(()),
        other => Err(Error::invalid_param(format!(
            "Unknown push rule kind {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::push::Action;

    #[test]
    fn room_rules_follow_an_upgrade() {
        let user: OwnedUserId = "@a:x".try_into().expect("user id");
        let old: ruma::OwnedRoomId = "!old:x".try_into().expect("room id");
        let new: ruma::OwnedRoomId = "!new:x".try_into().expect("room id");
        let mut rules = crate::service::push::defaults::server_default(&user);
        rules
            .insert(
                NewPushRule::Room(NewSimplePushRule::new(old.clone(), vec![])),
                None,
                None,
            )
            .expect("room rule");
        rules
            .insert(
                NewPushRule::Override(NewConditionalPushRule::new(
                    format!("mute {old}"),
                    vec![PushCondition::EventMatch(
                        ruma::push::EventMatchConditionData::new("room_id".into(), old.to_string()),
                    )],
                    vec![Action::Notify],
                )),
                None,
                None,
            )
            .expect("override rule");
        let copies = room_rule_copies(&rules, &old, &new);
        let ids: Vec<&str> = copies.iter().map(NewPushRule::rule_id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&new.as_str()));
        assert!(ids.contains(&format!("mute {new}").as_str()));
    }
}
