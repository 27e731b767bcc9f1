//! One evaluation per event for every member still on the server-default rules.
//!
//! The server-default rules of two users differ only in four rules that name the user
//! (`USER_SPECIFIC_RULES`): an invite for them, a mention of their id, their display name and
//! their user name in the body. Every other default rule gives the same answer for every
//! member, so ruma evaluates the defaults once per event with those four set aside; a member
//! then gets that shared outcome unless one of the four *could* apply to them, which a few
//! string comparisons tell (a superset: a member it names is evaluated in full, by ruma, with
//! their own rules). The outcome is therefore exactly what a full evaluation gives.

use futures::FutureExt;
use ruma::{
    OwnedUserId, UserId,
    push::{
        Action, FlattenedJson, FlattenedJsonValue, PushConditionRoomCtx, Ruleset, ScalarJsonValue,
    },
};

/// The default rules whose content or outcome depends on the member (ids as ruma and
/// `defaults` name them).
pub const USER_SPECIFIC_RULES: [&str; 4] = [
    ".m.rule.invite_for_me",
    ".m.rule.is_user_mention",
    ".m.rule.contains_display_name",
    ".m.rule.contains_user_name",
];

/// The key of the user ids an event intentionally mentions.
const MENTIONED_USERS: &str = r"content.m\.mentions.user_ids";

/// The server-default rules, built once for a stand-in user.
pub struct DefaultRules {
    rules: Ruleset,
    stand_in: OwnedUserId,
}

impl DefaultRules {
    pub fn new() -> Self {
        // Never a real member: a server name under the reserved `.invalid` top-level domain.
        #[allow(clippy::expect_used, reason = "a constant, valid user id")]
        let stand_in =
            OwnedUserId::try_from("@push-rules-stand-in:hearth.invalid").expect("valid user id");
        Self {
            rules: super::defaults::server_default(&stand_in),
            stand_in,
        }
    }
}

/// A member as the user-specific default rules see them.
pub struct Candidate<'a> {
    pub user: &'a UserId,
    /// The member's display name in the room, lowercased ("" when none).
    pub lower_display_name: &'a str,
}

/// The shared outcome of the default rules for one event, and what a member must match to
/// need their own evaluation.
pub struct SharedOutcome<'a> {
    /// The actions of the first member-independent rule that applies (`None`: no rule does).
    pub actions: Option<&'a [Action]>,
    /// The state key, lowercased, when an invite rule comes before the shared match.
    invite_target: Option<String>,
    /// The mentioned user ids, when the mention rule comes before the shared match.
    mentioned: Vec<&'a str>,
    /// The body, lowercased, when a display-name or user-name rule comes before it.
    lower_body: Option<String>,
    /// Whether the shared outcome could not be computed (the event's sender is the stand-in):
    /// every member is then evaluated in full.
    unusable: bool,
}

impl DefaultRules {
    /// Evaluates the member-independent default rules for `event`, in the rules' order, and
    /// notes each user-specific rule met before the first that applies.
    pub fn shared_outcome<'a>(
        &'a self,
        event: &'a FlattenedJson,
        context: &mut PushConditionRoomCtx,
    ) -> SharedOutcome<'a> {
        context.user_id.clone_from(&self.stand_in);
        context.user_display_name.clear();
        let mut outcome = SharedOutcome {
            actions: None,
            invite_target: None,
            mentioned: Vec::new(),
            lower_body: None,
            unusable: event.get_str("sender") == Some(self.stand_in.as_str()),
        };
        for rule in self.rules.iter() {
            match rule.rule_id() {
                ".m.rule.invite_for_me" => {
                    outcome.invite_target = event.get_str("state_key").map(str::to_lowercase);
                }
                ".m.rule.is_user_mention" => {
                    if let Some(FlattenedJsonValue::Array(ids)) = event.get(MENTIONED_USERS) {
                        outcome.mentioned = ids
                            .iter()
                            .filter_map(|id| match id {
                                ScalarJsonValue::String(id) => Some(id.as_str()),
                                _ => None,
                            })
                            .collect();
                    }
                }
                ".m.rule.contains_display_name" | ".m.rule.contains_user_name" => {
                    if outcome.lower_body.is_none() {
                        outcome.lower_body = event.get_str("content.body").map(str::to_lowercase);
                    }
                }
                _ => {
                    // No default condition waits on anything: the future is ready at once.
                    if rule.applies(event, context).now_or_never().unwrap_or(false) {
                        outcome.actions = Some(rule.actions());
                        break;
                    }
                }
            }
        }
        outcome
    }
}

impl Default for DefaultRules {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedOutcome<'_> {
    /// Whether a member on the default rules may get another outcome than the shared one
    /// (then they are evaluated in full). Never `false` when a user-specific rule applies.
    pub fn may_differ_for(&self, member: &Candidate<'_>) -> bool {
        if self.unusable {
            return true;
        }
        let user = member.user.as_str();
        // ruma lowercases value and pattern; user ids are ASCII.
        if self
            .invite_target
            .as_deref()
            .is_some_and(|target| target.eq_ignore_ascii_case(user))
        {
            return true;
        }
        if self.mentioned.contains(&user) {
            return true;
        }
        if let Some(body) = &self.lower_body {
            // A word match (ruma's, without wildcards) is a substring of the lowercased
            // body; a pattern with wildcards may match without being one. An empty display
            // name matches only an empty body.
            let name = member.lower_display_name;
            if has_wildcards(name) || (name.is_empty() && body.is_empty()) {
                return true;
            }
            if !name.is_empty() && body.contains(name) {
                return true;
            }
            let localpart = member.user.localpart();
            if has_wildcards(localpart) || contains_ignoring_ascii_case(body, localpart) {
                return true;
            }
        }
        false
    }
}

fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Whether `lower` (already lowercased) contains `ascii` lowercased; user-id localparts are
/// ASCII, so this equals ruma's Unicode lowercasing of them.
fn contains_ignoring_ascii_case(lower: &str, ascii: &str) -> bool {
    if ascii.bytes().any(|b| b.is_ascii_uppercase()) {
        lower.contains(&ascii.to_ascii_lowercase())
    } else {
        lower.contains(ascii)
    }
}

#[cfg(test)]
mod tests {
    use ruma::{push::AnyPushRuleRef, serde::Raw};
    use serde_json::json;

    use super::*;

    fn user(id: &str) -> OwnedUserId {
        OwnedUserId::try_from(id).expect("user id")
    }

    /// The premise of the shortcut: two users' default rules differ only in the rules it
    /// names, and only those test the member's display name.
    #[test]
    fn only_the_named_rules_depend_on_the_user() {
        let a = super::super::defaults::server_default(&user("@alice:one.example"));
        let b = super::super::defaults::server_default(&user("@bob:two.example"));
        let a: Vec<AnyPushRuleRef<'_>> = a.iter().collect();
        let b: Vec<AnyPushRuleRef<'_>> = b.iter().collect();
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(&b) {
            assert_eq!(a.rule_id(), b.rule_id(), "same rules in the same order");
            let same = format!("{a:?}") == format!("{b:?}");
            let named = USER_SPECIFIC_RULES.contains(&a.rule_id());
            #[allow(deprecated)]
            let tests_name = matches!(a, AnyPushRuleRef::Override(r) | AnyPushRuleRef::Underride(r)
                if r.conditions.iter().any(|c| matches!(c, ruma::push::PushCondition::ContainsDisplayName)));
            assert!(same || named, "{} depends on the user", a.rule_id());
            assert!(
                !tests_name || named,
                "{} tests the display name",
                a.rule_id()
            );
        }
    }

    /// For a spread of events and members, the shortcut's answer (shared outcome unless
    /// `may_differ_for`) equals ruma's full evaluation of the member's own default rules.
    #[test]
    fn shortcut_equals_full_evaluation() {
        let sender = user("@sender:hs.example");
        let members = [
            (user("@alice:hs.example"), "Alice"),
            (user("@bob:hs.example"), ""),
            (user("@Carol:hs.example"), "carol c."),
            (user("@dave:hs.example"), "D*ve"),
            (user("@erin:hs.example"), "Erin"),
        ];
        let events = [
            json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "hello all"}}),
            json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "hi alice!"}}),
            json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "ping bob"}}),
            json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "CAROL C. there?"}}),
            json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "Dave and erin"}}),
            json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": ""}}),
            json!({"type": "m.room.message", "content": {"msgtype": "m.notice", "body": "alice"}}),
            json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "x",
                "m.mentions": {"user_ids": ["@erin:hs.example"]}}}),
            json!({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "alice",
                "m.mentions": {}}}),
            json!({"type": "m.room.member", "state_key": "@alice:hs.example",
                "content": {"membership": "invite"}}),
            json!({"type": "m.room.member", "state_key": "@bob:hs.example",
                "content": {"membership": "join"}}),
            json!({"type": "m.reaction", "content": {}}),
            json!({"type": "m.room.encrypted", "content": {}}),
        ];
        let shortcut = DefaultRules::new();
        let (mut shared_path, mut full_path) = (0, 0);
        for member_count in [2u64, 10] {
            for event in &events {
                let mut event = event.clone();
                event["sender"] = json!(sender);
                event["room_id"] = json!("!room:hs.example");
                let raw: Raw<()> =
                    Raw::from_json(serde_json::value::to_raw_value(&event).expect("json"));
                let flat = FlattenedJson::from_raw(&raw);
                let mut context = PushConditionRoomCtx::new(
                    ruma::OwnedRoomId::try_from("!room:hs.example").expect("room id"),
                    ruma::UInt::new_saturating(member_count),
                    sender.clone(),
                    String::new(),
                );
                let shared = shortcut.shared_outcome(&flat, &mut context);
                let shared_actions = shared.actions.map(<[Action]>::to_vec);
                for (member, name) in &members {
                    let lower = name.to_lowercase();
                    let candidate = Candidate {
                        user: member,
                        lower_display_name: &lower,
                    };
                    let rules = super::super::defaults::server_default(member);
                    let mut own = context.clone();
                    own.user_id = member.clone();
                    own.user_display_name = (*name).to_owned();
                    let full = rules
                        .get_actions(&raw, &own)
                        .now_or_never()
                        .expect("ready")
                        .to_vec();
                    if shared.may_differ_for(&candidate) {
                        full_path += 1;
                    } else {
                        shared_path += 1;
                        assert_eq!(
                            serde_json::to_value(shared_actions.clone().unwrap_or_default())
                                .expect("actions"),
                            serde_json::to_value(&full).expect("actions"),
                            "{member} on {event}"
                        );
                    }
                }
            }
        }
        // Most members take the shortcut; those an event names do not.
        assert!(
            shared_path > 2 * full_path,
            "{shared_path} shared, {full_path} full"
        );
        assert!(full_path > 0);
    }
}
