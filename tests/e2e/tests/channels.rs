//! Channels through sumu-local + moto with real WebSocket clients: subscribe and
//! unsubscribe (the presence Lambda's proxy routes), back-end publications through the queue
//! and the topic, client emits, the per-connection cap, cleanup when a connection ends, and
//! hostile input, each with its exact outcome and nothing stored or delivered.

use std::collections::HashSet;

use e2e::channels::{grants, publication, round_trip, subscribe, unsubscribe};
use e2e::notify::{Receiver, Via};
use e2e::{close_frame, next_text, send_text, string, Local};
use serde_json::{json, Value};
use sumu_wire::{subscriptions, table};

fn request(channels: &[&str], data: Value) -> String {
    json!({"channels": channels, "data": data}).to_string()
}

#[tokio::test]
async fn subscribe_unsubscribe_and_resubscribe_decide_what_a_connection_receives() {
    let local = Local::start_with_channels().await;
    let mut alice = local
        .receiver_with_grants("alice", &grants(&["room/*"], &[]))
        .await;

    subscribe(&mut alice.client, "room/42").await;
    let items = local.subscriptions_of(&alice.connection_id).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(string(&items[0], subscriptions::CHANNEL), "room/42");
    assert_eq!(string(&items[0], subscriptions::USER_ID), alice.user);
    let connection = local.item_of(&alice.user).await;
    assert_eq!(
        items[0].get(subscriptions::EXPIRES_AT),
        connection.get(table::EXPIRES_AT),
        "a subscription expires with its connection"
    );

    // room/42 arrives; room/43 does not.
    for via in [Via::Queue, Via::Topic] {
        if via == Via::Topic {
            local.until_topic_subscribed().await;
        }
        local
            .notify(via, &request(&["room/42"], json!({"n": 1})))
            .await;
        local
            .notify(via, &request(&["room/43"], json!({"n": 2})))
            .await;
    }
    alice
        .received_publications(
            &local,
            &[
                publication("room/42", &json!({"n": 1}), None),
                publication("room/42", &json!({"n": 1}), None),
            ],
        )
        .await;

    unsubscribe(&mut alice.client, "room/42").await;
    assert!(local
        .subscriptions_of(&alice.connection_id)
        .await
        .is_empty());
    local
        .notify(Via::Queue, &request(&["room/42"], json!({"n": 3})))
        .await;
    alice.received_publications(&local, &[]).await;
    // Unsubscribing again changes nothing and says so.
    unsubscribe(&mut alice.client, "room/42").await;

    subscribe(&mut alice.client, "room/42").await;
    subscribe(&mut alice.client, "room/42").await; // idempotent: still one item
    assert_eq!(local.subscriptions_of(&alice.connection_id).await.len(), 1);
    local
        .notify(Via::Queue, &request(&["room/42"], json!({"n": 4})))
        .await;
    alice
        .received_publications(&local, &[publication("room/42", &json!({"n": 4}), None)])
        .await;
}

#[tokio::test]
async fn exact_and_wildcard_subscribers_each_get_a_publication_once_with_one_id() {
    let local = Local::start_with_channels().await;
    let everything = grants(&["*"], &[]);
    let mut twice = local.receiver_with_grants("twice", &everything).await;
    let mut all = local.receiver_with_grants("all", &everything).await;
    let mut other_room = local.receiver_with_grants("other", &everything).await;
    // Two patterns that both match room/42: one delivery.
    subscribe(&mut twice.client, "room/*").await;
    subscribe(&mut twice.client, "room/42").await;
    subscribe(&mut all.client, "*").await;
    subscribe(&mut other_room.client, "room/43").await;

    local
        .notify(Via::Queue, &request(&["room/42"], json!({"hello": "room"})))
        .await;
    let expected = [publication("room/42", &json!({"hello": "room"}), None)];
    let twice_ids = twice.received_publications(&local, &expected).await;
    let all_ids = all.received_publications(&local, &expected).await;
    other_room.received_publications(&local, &[]).await;
    assert_eq!(twice_ids, all_ids, "the same id for every recipient");
}

#[tokio::test]
async fn exclusions_apply_to_publications() {
    let local = Local::start_with_channels().await;
    let room = grants(&["room/*"], &[]);
    let mut kept = local.receiver_with_grants("kept", &room).await;
    let mut by_user = local.receiver_with_grants("by-user", &room).await;
    let mut by_connection = local.receiver_with_grants("by-connection", &room).await;
    for receiver in [&mut kept, &mut by_user, &mut by_connection] {
        subscribe(&mut receiver.client, "room/1").await;
    }
    let body = json!({
        "channels": ["room/1"],
        "exclude_users": [by_user.user],
        "exclude_connections": [by_connection.connection_id],
        "data": {"only": "kept"},
    });
    local.notify(Via::Queue, &body.to_string()).await;
    kept.received_publications(
        &local,
        &[publication("room/1", &json!({"only": "kept"}), None)],
    )
    .await;
    by_user.received_publications(&local, &[]).await;
    by_connection.received_publications(&local, &[]).await;
}

#[tokio::test]
async fn an_emit_reaches_the_other_subscribers_from_the_trusted_sender_only() {
    let local = Local::start_with_channels().await;
    let mut alice = local
        .receiver_with_grants("alice", &grants(&["room/*"], &["room/*"]))
        .await;
    let mut bob = local
        .receiver_with_grants("bob", &grants(&["room/*"], &[]))
        .await;
    subscribe(&mut alice.client, "room/42").await;
    subscribe(&mut bob.client, "room/42").await;

    // A `from` in the frame and in the data: neither is the sender the subscribers are told.
    let data = json!({"text": "hi", "from": "mallory"});
    send_text(
        &mut alice.client,
        &json!({"action": "emit", "channel": "room/42", "data": data, "from": "mallory"})
            .to_string(),
    )
    .await;
    bob.received_publications(&local, &[publication("room/42", &data, Some(&alice.user))])
        .await;
    alice.received_publications(&local, &[]).await;
}

#[tokio::test]
async fn an_emit_without_a_publish_grant_is_refused_and_reaches_nobody() {
    let local = Local::start_with_channels().await;
    let mut eve = local
        .receiver_with_grants("eve", &grants(&["room/*"], &["other/*"]))
        .await;
    let mut bob = local
        .receiver_with_grants("bob", &grants(&["room/*"], &[]))
        .await;
    subscribe(&mut eve.client, "room/42").await;
    subscribe(&mut bob.client, "room/42").await;

    send_text(
        &mut eve.client,
        r#"{"action":"emit","channel":"room/42","data":{"sneaky":true}}"#,
    )
    .await;
    let refusal = next_text(&mut eve.client).await;
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["error"], "forbidden", "{refusal}");
    assert_eq!(refusal["channel"], "room/42", "{refusal}");
    eve.received_publications(&local, &[]).await;
    bob.received_publications(&local, &[]).await;
}

#[tokio::test]
async fn the_cap_refuses_the_101st_subscribe_and_holds_under_concurrent_subscribes() {
    let local = Local::start_with_channels().await;
    let mut full = local
        .receiver_with_grants("full", &grants(&["*"], &[]))
        .await;
    for n in 0..100 {
        subscribe(&mut full.client, &format!("room/{n}")).await;
    }
    let refused = round_trip(&mut full.client, "subscribe", &json!("room/100")).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["error"], "too_many_subscriptions", "{refused}");
    assert_eq!(refused["channel"], "room/100", "{refused}");
    assert_eq!(local.subscriptions_of(&full.connection_id).await.len(), 100);

    // 95 subscriptions, then 20 different ones at once: exactly 5 fit.
    let mut racer = local
        .receiver_with_grants("racer", &grants(&["*"], &[]))
        .await;
    for n in 0..95 {
        subscribe(&mut racer.client, &format!("room/{n}")).await;
    }
    for n in 0..20 {
        send_text(
            &mut racer.client,
            &json!({"action": "subscribe", "channel": format!("race/{n}")}).to_string(),
        )
        .await;
    }
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..20 {
        let reply = next_text(&mut racer.client).await;
        match reply["type"].as_str() {
            Some("subscribed") => accepted += 1,
            Some("error") if reply["error"] == "too_many_subscriptions" => refused += 1,
            _ => panic!("unexpected reply {reply}"),
        }
    }
    assert_eq!((accepted, refused), (5, 15));
    assert_eq!(
        local.subscriptions_of(&racer.connection_id).await.len(),
        100
    );
}

#[tokio::test]
async fn a_connection_that_ends_loses_its_subscriptions_and_is_never_posted_to() {
    let local = Local::start_with_channels().await;
    let room = grants(&["room/*"], &[]);
    let mut witness = local.receiver_with_grants("witness", &room).await;
    subscribe(&mut witness.client, "room/gone").await;

    // Closed by the client, vanished without a close frame, closed by the management API.
    let mut ended = Vec::new();
    for how in ["close", "vanish", "delete"] {
        let mut receiver = local.receiver_with_grants(how, &room).await;
        subscribe(&mut receiver.client, "room/gone").await;
        subscribe(&mut receiver.client, "room/*").await;
        assert_eq!(
            local.subscriptions_of(&receiver.connection_id).await.len(),
            2
        );
        match how {
            "close" => receiver.client.close(None).await.expect("close"),
            "vanish" => drop(receiver.client),
            _ => {
                local
                    .management()
                    .delete_connection()
                    .connection_id(&receiver.connection_id)
                    .send()
                    .await
                    .expect("DELETE @connections");
            }
        }
        ended.push(receiver.connection_id);
    }
    for connection_id in &ended {
        local.until_no_subscriptions(connection_id).await;
    }
    local
        .notify(
            Via::Queue,
            &request(&["room/gone"], json!({"after": "cleanup"})),
        )
        .await;
    // Only the witness is found and posted to: a post to an ended connection would be a 410
    // the pusher prunes, and its subscriptions are already gone from the table.
    witness
        .received_publications(
            &local,
            &[publication("room/gone", &json!({"after": "cleanup"}), None)],
        )
        .await;
}

#[tokio::test]
async fn hostile_channel_names_are_refused_and_store_nothing() {
    let local = Local::start_with_channels().await;
    let mut mallory = local
        .receiver_with_grants("mallory", &grants(&["*"], &["*"]))
        .await;
    let mut witness = local
        .receiver_with_grants("witness", &grants(&["*"], &[]))
        .await;
    subscribe(&mut witness.client, "*").await;
    let long_segment = "a".repeat(65);
    let too_long = ["abcdefgh"; 29].join("/"); // 29 × 8 + 28 = 260 bytes
    let hostile: Vec<Value> = vec![
        json!("room\"42"),
        json!("room\\42"),
        json!("room'42"),
        json!("ro*om"),
        json!("room//42"),
        json!("/room"),
        json!("room/"),
        json!("a/b/c/d/e/f"),
        json!(long_segment),
        json!(too_long),
        json!("huone/ä"),
        json!("room\u{1}"),
        json!(""),
        json!(null),
        json!(42),
        json!({"channel": "room/1"}),
    ];
    for channel in &hostile {
        for action in ["subscribe", "unsubscribe"] {
            let reply = round_trip(&mut mallory.client, action, channel).await;
            assert_eq!(reply["type"], "error", "{action} {channel} → {reply}");
            assert_eq!(
                reply["error"], "invalid_channel",
                "{action} {channel} → {reply}"
            );
        }
        send_text(
            &mut mallory.client,
            &json!({"action": "emit", "channel": channel, "data": 1}).to_string(),
        )
        .await;
        let reply = next_text(&mut mallory.client).await;
        assert_eq!(
            reply["error"], "invalid_channel",
            "emit {channel} → {reply}"
        );
    }
    // A missing channel too.
    send_text(&mut mallory.client, r#"{"action":"subscribe"}"#).await;
    assert_eq!(
        next_text(&mut mallory.client).await["error"],
        "invalid_channel"
    );
    assert!(local
        .subscriptions_of(&mallory.connection_id)
        .await
        .is_empty());
    // No emit was delivered, even to a subscriber of everything.
    witness.received_publications(&local, &[]).await;
}

#[tokio::test]
async fn hostile_emit_data_is_delivered_as_data_and_reaches_only_subscribers() {
    let local = Local::start_with_channels().await;
    let mut sender = local
        .receiver_with_grants("sender", &grants(&["room/*"], &["room/*"]))
        .await;
    let mut listener = local
        .receiver_with_grants("listener", &grants(&["room/*"], &[]))
        .await;
    let mut victim = Receiver::connect(&local, "victim").await;
    subscribe(&mut listener.client, "room/1").await;

    let crafted = [
        json!("\"],\"users\":[\"victim\"],\"x\":[\""),
        json!({"users": ["victim"], "channels": ["*"], "connections": [victim.connection_id]}),
        json!("\\\\\"}\\u0000"),
    ];
    for data in &crafted {
        send_text(
            &mut sender.client,
            &json!({"action": "emit", "channel": "room/1", "data": data}).to_string(),
        )
        .await;
    }
    let expected: Vec<Value> = crafted
        .iter()
        .map(|data| publication("room/1", data, Some(&sender.user)))
        .collect();
    listener.received_publications(&local, &expected).await;
    victim.received_exactly(&local, &[]).await;

    // No data: refused as invalid_message, delivered to nobody.
    send_text(
        &mut sender.client,
        r#"{"action":"emit","channel":"room/1"}"#,
    )
    .await;
    let refusal = next_text(&mut sender.client).await;
    assert_eq!(refusal["error"], "invalid_message", "{refusal}");
    assert_eq!(refusal["channel"], "room/1", "{refusal}");
    listener.received_publications(&local, &[]).await;

    // Over 128 KB: the gateway's limits close the connection (1009) before anything is routed,
    // as API Gateway does; nothing reaches the subscribers.
    let big = "x".repeat(130 * 1024);
    send_text(
        &mut sender.client,
        &json!({"action": "emit", "channel": "room/1", "data": big}).to_string(),
    )
    .await;
    assert_eq!(u16::from(close_frame(&mut sender.client).await.code), 1009);
    listener.received_publications(&local, &[]).await;
}

#[tokio::test]
async fn unusable_grants_claims_leave_only_the_static_grants() {
    let local = Local::start_configured(|config| {
        config.presence = Some(sumu_local::PresenceSetup {
            destination: sumu_local::PresenceDestination::None,
            ..Default::default()
        });
        config.static_grants = authorizer::StaticGrants {
            subscribe: vec!["user/{sub}".into()],
            publish: vec![],
        };
    })
    .await;
    let huge: Vec<String> = (0..400).map(|n| format!("room/{n:06}")).collect();
    for (name, claim) in [
        ("string", json!("room/*")),
        ("invalid", json!({"subscribe": ["room/**"]})),
        ("huge", json!({"subscribe": huge})),
    ] {
        let user = testkit::unique_name(name);
        let token = local
            .idp
            .mint_claims(&json!({
                "iss": sumu_local::dev_idp::DEV_ISSUER,
                "aud": sumu_local::dev_idp::DEV_AUDIENCE,
                "sub": user,
                "iat": e2e::now_secs(),
                "exp": e2e::now_secs() + 600,
                "channels": claim,
            }))
            .expect("mint");
        let mut client = local.connect_with_token(&token).await;
        let connection_id = local.connection_id_of(&user).await;
        // The claim's grant is gone, the static one is there.
        let refused = round_trip(&mut client, "subscribe", &json!("room/1")).await;
        assert_eq!(refused["error"], "forbidden", "{name}: {refused}");
        subscribe(&mut client, &format!("user/{user}")).await;
        let items = local.subscriptions_of(&connection_id).await;
        let patterns: HashSet<String> = items
            .iter()
            .map(|item| string(item, subscriptions::CHANNEL))
            .collect();
        assert_eq!(patterns, HashSet::from([format!("user/{user}")]), "{name}");
    }
}
