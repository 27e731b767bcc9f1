//! Push-rule endpoints: the server defaults, user rules, ordering, enabling, actions, the
//! errors that change nothing, `/sync`, and room upgrades.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::all_rules;
use crate::common::{TestServer, assert_error, create_room};

fn rule_ids(rules: &Value, kind: &str) -> Vec<String> {
    rules["global"][kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_user_starts_with_the_spec_defaults() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let rules = all_rules(&server, &alice).await;
    let overrides = rule_ids(&rules, "override");
    for id in [
        ".m.rule.master",
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.contains_display_name",
        ".m.rule.is_room_mention",
        ".m.rule.roomnotif",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ] {
        assert!(
            overrides.contains(&id.to_owned()),
            "{id} missing: {overrides:?}"
        );
    }
    let underrides = rule_ids(&rules, "underride");
    for id in [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ] {
        assert!(
            underrides.contains(&id.to_owned()),
            "{id} missing: {underrides:?}"
        );
    }
    assert_eq!(
        rule_ids(&rules, "content"),
        [".m.rule.contains_user_name"],
        "the legacy user-name rule"
    );
    // The user mention rule names this user.
    let mention = rules["global"]["override"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == ".m.rule.is_user_mention")
        .unwrap();
    assert_eq!(mention["conditions"][0]["value"], alice.user_id);
    let (status, global) = server
        .get("/_matrix/client/v3/pushrules/global/", Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(global, rules["global"]);
    // And the same rules come down an initial sync, as account data.
    let (_, sync) = server
        .get("/_matrix/client/v3/sync", Some(&alice.token))
        .await;
    let pushed = sync["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .expect("m.push_rules in the initial sync");
    assert_eq!(pushed["content"], rules);
    let (status, data) = server
        .get(
            &format!(
                "/_matrix/client/v3/user/{}/account_data/m.push_rules",
                alice.user_id
            ),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(data, rules);
}

#[tokio::test]
async fn user_rules_are_set_ordered_enabled_and_deleted() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let base = "/_matrix/client/v3/pushrules/global";
    let put = |path: String, body: Value| {
        let (server, token) = (&server, alice.token.clone());
        async move { server.put(&path, Some(&token), body).await }
    };
    let (status, body) = put(
        format!("{base}/content/cake"),
        json!({ "pattern": "cake", "actions": ["notify"] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = put(
        format!("{base}/content/pie?before=cake"),
        json!({ "pattern": "pie", "actions": ["notify"] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = put(
        format!("{base}/content/tart?after=cake"),
        json!({ "pattern": "tart", "actions": [] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let user_content: Vec<String> = rule_ids(&all_rules(&server, &alice).await, "content")
        .into_iter()
        .filter(|id| !id.starts_with('.'))
        .collect();
    assert_eq!(user_content, ["pie", "cake", "tart"]);

    let (status, rule) = server
        .get(&format!("{base}/content/cake"), Some(&alice.token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rule["pattern"], "cake");
    assert_eq!(rule["actions"], json!(["notify"]));
    assert_eq!(rule["default"], false);

    let (status, _) = put(
        format!("{base}/content/cake/enabled"),
        json!({ "enabled": false }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, enabled) = server
        .get(&format!("{base}/content/cake/enabled"), Some(&alice.token))
        .await;
    assert_eq!(enabled, json!({ "enabled": false }));
    let (status, _) = put(
        format!("{base}/content/cake/actions"),
        json!({ "actions": ["notify", { "set_tweak": "highlight" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, actions) = server
        .get(&format!("{base}/content/cake/actions"), Some(&alice.token))
        .await;
    assert_eq!(
        actions["actions"],
        json!(["notify", { "set_tweak": "highlight" }])
    );

    // Server defaults: disabled and re-acted, never deleted.
    let (status, _) = put(
        format!("{base}/override/.m.rule.suppress_notices/enabled"),
        json!({ "enabled": false }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, enabled) = server
        .get(
            &format!("{base}/override/.m.rule.suppress_notices/enabled"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(enabled, json!({ "enabled": false }));
    let before = all_rules(&server, &alice).await;
    let deleted = server
        .request(
            reqwest::Method::DELETE,
            &format!("{base}/override/.m.rule.master"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_error(&deleted, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_eq!(all_rules(&server, &alice).await, before, "nothing changed");

    let (status, _) = server
        .request(
            reqwest::Method::DELETE,
            &format!("{base}/content/cake"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let missing = server
        .get(&format!("{base}/content/cake"), Some(&alice.token))
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn bad_rules_are_refused_and_change_nothing() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let base = "/_matrix/client/v3/pushrules/global";
    let before = all_rules(&server, &alice).await;
    let cases = [
        // A rule id reserved for the server.
        (
            format!("{base}/content/.mine"),
            json!({ "pattern": "x", "actions": [] }),
            StatusCode::BAD_REQUEST,
            "M_INVALID_PARAM",
        ),
        // Relative to a rule that does not exist.
        (
            format!("{base}/content/x?before=nope"),
            json!({ "pattern": "x", "actions": [] }),
            StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
        ),
        // Relative to a server-default rule.
        (
            format!("{base}/override/x?after=.m.rule.master"),
            json!({ "conditions": [], "actions": [] }),
            StatusCode::BAD_REQUEST,
            "M_INVALID_PARAM",
        ),
        // A content rule without its pattern.
        (
            format!("{base}/content/x"),
            json!({ "actions": [] }),
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
        ),
        // Conditions that are not a list.
        (
            format!("{base}/override/x"),
            json!({ "conditions": "room_id", "actions": [] }),
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
        ),
        // A room rule whose id is not a room id.
        (
            format!("{base}/room/not-a-room"),
            json!({ "actions": [] }),
            StatusCode::BAD_REQUEST,
            "M_INVALID_PARAM",
        ),
    ];
    for (path, body, status, errcode) in cases {
        let response = server.put(&path, Some(&alice.token), body).await;
        assert_error(&response, status, errcode);
    }
    for path in [
        format!("{base}/content/nope"),
        format!("{base}/content/nope/enabled"),
        format!("{base}/content/nope/actions"),
    ] {
        assert_error(
            &server.get(&path, Some(&alice.token)).await,
            StatusCode::NOT_FOUND,
            "M_NOT_FOUND",
        );
    }
    assert_error(
        &server
            .put(
                &format!("{base}/content/nope/enabled"),
                Some(&alice.token),
                json!({ "enabled": true }),
            )
            .await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    // A kind the spec does not define holds no rules, and none can be put there.
    assert_error(
        &server
            .get(&format!("{base}/flavour/x"), Some(&alice.token))
            .await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );
    assert_error(
        &server
            .put(
                &format!("{base}/flavour/x/enabled"),
                Some(&alice.token),
                json!({ "enabled": false }),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );
    // The account data API cannot overwrite them either.
    assert_error(
        &server
            .put(
                &format!(
                    "/_matrix/client/v3/user/{}/account_data/m.push_rules",
                    alice.user_id
                ),
                Some(&alice.token),
                json!({ "global": {} }),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "M_BAD_JSON",
    );
    assert_eq!(all_rules(&server, &alice).await, before, "nothing changed");
}

#[tokio::test]
async fn a_rule_change_wakes_an_incremental_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let (_, first) = server
        .get("/_matrix/client/v3/sync", Some(&alice.token))
        .await;
    let since = first["next_batch"].as_str().unwrap().to_owned();
    let (_, quiet) = server
        .get(
            &format!("/_matrix/client/v3/sync?since={since}&timeout=0"),
            Some(&alice.token),
        )
        .await;
    assert!(
        quiet["account_data"]["events"]
            .as_array()
            .is_none_or(|events| events.iter().all(|e| e["type"] != "m.push_rules")),
        "unchanged rules are not sent again: {quiet}"
    );
    let waiting = {
        let (http, base, token) = (
            server.http.clone(),
            server.base.clone(),
            alice.token.clone(),
        );
        tokio::spawn(async move {
            http.get(format!(
                "{base}/_matrix/client/v3/sync?since={since}&timeout=10000"
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, _) = server
        .put(
            "/_matrix/client/v3/pushrules/global/room/!foo:example.com",
            Some(&alice.token),
            json!({ "actions": ["notify"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let woken = waiting.await.unwrap();
    let rules = woken["account_data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .expect("the new rules");
    assert!(
        rules["content"]["global"]["room"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule_id"] == "!foo:example.com")
    );
}

#[tokio::test]
async fn room_rules_follow_a_room_upgrade() {
    let server = TestServer::start().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(
        &server,
        &alice,
        json!({ "preset": "public_chat", "room_version": "10" }),
    )
    .await;
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for user in [&alice, &bob] {
        let (status, _) = server
            .put(
                &format!("/_matrix/client/v3/pushrules/global/room/{room}"),
                Some(&user.token),
                json!({ "actions": ["dont_notify"] }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, upgraded) = server
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/upgrade"),
            Some(&alice.token),
            json!({ "new_version": "11" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{upgraded}");
    let new_room = upgraded["replacement_room"].as_str().unwrap().to_owned();
    let (status, _) = server
        .post(
            &format!("/_matrix/client/v3/join/{new_room}"),
            Some(&bob.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for user in [&alice, &bob] {
        let rooms = rule_ids(&all_rules(&server, user).await, "room");
        assert!(rooms.contains(&room), "{rooms:?}");
        assert!(rooms.contains(&new_room), "{} has {rooms:?}", user.user_id);
        let (_, actions) = server
            .get(
                &format!("/_matrix/client/v3/pushrules/global/room/{new_room}/actions"),
                Some(&user.token),
            )
            .await;
        assert_eq!(actions["actions"], json!(["dont_notify"]));
    }
}
