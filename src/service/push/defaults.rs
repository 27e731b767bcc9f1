//! The server-default push rules: ruma's current set, plus the legacy mention rules the spec
//! still lists (deprecated since Matrix 1.7, and what clients that send no `m.mentions` rely
//! on): `.m.rule.contains_display_name` and `.m.rule.roomnotif` (override) and
//! `.m.rule.contains_user_name` (content). ruma's evaluation already gives them their current
//! semantics: they stand aside when an event carries `m.mentions`.

use ruma::{
    UserId,
    power_levels::NotificationPowerLevelsKey,
    push::{
        Action, ConditionalPushRuleInit, EventMatchConditionData, HighlightTweakValue,
        PatternedPushRuleInit, PushCondition, Ruleset, SenderNotificationPermissionConditionData,
        SoundTweakValue, Tweak,
    },
};

fn highlight() -> Action {
    Action::SetTweak(Tweak::Highlight(HighlightTweakValue::Yes))
}

fn sound() -> Action {
    Action::SetTweak(Tweak::Sound(SoundTweakValue::Default))
}

/// The spec's server-default ruleset for `user`.
pub fn server_default(user: &UserId) -> Ruleset {
    let mut rules = Ruleset::server_default(user);
    #[allow(deprecated)]
    let display_name = ConditionalPushRuleInit {
        actions: vec![Action::Notify, sound(), highlight()],
        default: true,
        enabled: true,
        rule_id: ".m.rule.contains_display_name".into(),
        conditions: vec![PushCondition::ContainsDisplayName],
    };
    let room_notif = ConditionalPushRuleInit {
        actions: vec![Action::Notify, highlight()],
        default: true,
        enabled: true,
        rule_id: ".m.rule.roomnotif".into(),
        conditions: vec![
            PushCondition::EventMatch(EventMatchConditionData::new(
                "content.body".into(),
                "@room".into(),
            )),
            PushCondition::SenderNotificationPermission(
                SenderNotificationPermissionConditionData::new(NotificationPowerLevelsKey::Room),
            ),
        ],
    };
    // The spec's order: each legacy rule right after its intentional-mentions successor.
    let current: Vec<_> = rules.override_.drain(..).collect();
    let (mut display_name, mut room_notif) = (Some(display_name), Some(room_notif));
    for rule in current {
        let after = match rule.rule_id.as_str() {
            ".m.rule.is_user_mention" => display_name.take(),
            ".m.rule.is_room_mention" => room_notif.take(),
            _ => None,
        };
        rules.override_.insert(rule);
        if let Some(legacy) = after {
            rules.override_.insert(legacy.into());
        }
    }
    let existing: Vec<_> = rules.content.drain(..).collect();
    rules.content.insert(
        PatternedPushRuleInit {
            actions: vec![Action::Notify, sound(), highlight()],
            default: true,
            enabled: true,
            rule_id: ".m.rule.contains_user_name".into(),
            pattern: user.localpart().to_owned(),
        }
        .into(),
    );
    for rule in existing {
        rules.content.insert(rule);
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_rules_follow_their_successors() {
        let user = ruma::OwnedUserId::try_from("@alice:x").expect("user id");
        let rules = server_default(&user);
        let ids: Vec<&str> = rules.override_.iter().map(|r| r.rule_id.as_str()).collect();
        let at = |id: &str| ids.iter().position(|x| *x == id).expect(id);
        assert_eq!(
            at(".m.rule.contains_display_name"),
            at(".m.rule.is_user_mention") + 1
        );
        assert_eq!(at(".m.rule.roomnotif"), at(".m.rule.is_room_mention") + 1);
        let content: Vec<&str> = rules.content.iter().map(|r| r.pattern.as_str()).collect();
        assert_eq!(content, ["alice"]);
    }
}
