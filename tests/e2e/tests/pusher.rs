//! The pusher through sumu-local: notification requests sent to the notifications queue or
//! published to the notifications topic reach exactly the connections they target, through
//! real WebSocket clients; stale items are pruned; invalid requests are dead-lettered.
//!
//! Every scenario runs twice, via the queue and via the topic. Each client asserts what it
//! received and, with a marker posted after the pusher went idle, that nothing else came.

use e2e::notify::{Receiver, Via};
use e2e::{eventually, now_secs, Local};
use serde_json::json;

async fn local(via: Via) -> Local {
    let local = Local::start().await;
    if via == Via::Topic {
        local.until_topic_subscribed().await;
    }
    local
}

/// `#[tokio::test]`s running `scenario` via the queue and via the topic.
macro_rules! both_ways {
    ($scenario:ident, $queue:ident, $topic:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $queue() {
            $scenario(Via::Queue).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $topic() {
            $scenario(Via::Topic).await;
        }
    };
}

async fn unicast(via: Via) {
    let local = local(via).await;
    let mut target = Receiver::connect(&local, "target").await;
    let mut bystander = Receiver::connect(&local, "bystander").await;
    let data = json!({"type": "chat", "text": "hello", "via": format!("{via:?}")});

    local
        .notify(
            via,
            &json!({"users": [target.user], "data": data}).to_string(),
        )
        .await;

    target.received_exactly(&local, &[data]).await;
    bystander.received_exactly(&local, &[]).await;
}
both_ways!(unicast, unicast_via_queue, unicast_via_topic);

async fn multicast(via: Via) {
    let local = local(via).await;
    let mut first = Receiver::connect(&local, "first").await;
    let mut second = Receiver::connect(&local, "second").await;
    // A user with two sockets gets the message on both.
    let second_user = second.user.clone();
    let mut second_again = Receiver {
        client: local.connect(&second_user).await,
        connection_id: String::new(),
        user: second_user.clone(),
    };
    second_again.connection_id = eventually("the second socket's item exists", || async {
        let items = local.items_of(&second_user).await;
        let ids: Vec<String> = items
            .iter()
            .map(|item| e2e::string(item, sumu_wire::table::CONNECTION_ID))
            .collect();
        ids.into_iter().find(|id| *id != second.connection_id)
    })
    .await;
    let mut left_out = Receiver::connect(&local, "leftout").await;
    let data = json!({"n": 2});

    local
        .notify(
            via,
            // The duplicate user is removed: one delivery per connection per request.
            &json!({"users": [first.user, second.user, first.user], "data": data}).to_string(),
        )
        .await;

    first
        .received_exactly(&local, std::slice::from_ref(&data))
        .await;
    second
        .received_exactly(&local, std::slice::from_ref(&data))
        .await;
    second_again.received_exactly(&local, &[data]).await;
    left_out.received_exactly(&local, &[]).await;
}
both_ways!(multicast, multicast_via_queue, multicast_via_topic);

async fn broadcast(via: Via) {
    let local = local(via).await;
    let mut receivers = Vec::new();
    for _ in 0..3 {
        receivers.push(Receiver::connect(&local, "everyone").await);
    }
    let data = json!({"type": "maintenance"});

    local.notify(via, &json!({"data": data}).to_string()).await;

    for receiver in &mut receivers {
        receiver
            .received_exactly(&local, std::slice::from_ref(&data))
            .await;
    }
}
both_ways!(broadcast, broadcast_via_queue, broadcast_via_topic);

async fn broadcast_excluding_150_users(via: Via) {
    let local = local(via).await;
    let mut included = Receiver::connect(&local, "included").await;
    let mut also_included = Receiver::connect(&local, "included").await;
    let mut excluded = Receiver::connect(&local, "excluded").await;
    // 150 more excluded users, each with a live-looking item and no socket: a post to any of
    // them would be answered 410 and its item pruned, so an intact item proves no post.
    let mut excluded_users = vec![excluded.user.clone()];
    let mut fake_items = Vec::new();
    for n in 0..150 {
        let user = format!("{}-{n}", testkit::unique_name("excluded-item"));
        let connection_id = local.put_item(&user, now_secs() + 3600).await;
        excluded_users.push(user.clone());
        fake_items.push((user, connection_id));
    }
    let data = json!({"type": "broadcast", "excluding": excluded_users.len()});

    local
        .notify(
            via,
            &json!({"exclude_users": excluded_users, "data": data}).to_string(),
        )
        .await;

    included
        .received_exactly(&local, std::slice::from_ref(&data))
        .await;
    also_included.received_exactly(&local, &[data]).await;
    excluded.received_exactly(&local, &[]).await;
    let remaining = local.all_items().await.len();
    assert_eq!(
        remaining,
        3 + 150,
        "every excluded user's item is intact (none was posted to)"
    );
    for (user, _) in fake_items.iter().take(3) {
        assert_eq!(local.items_of(user).await.len(), 1, "{user}'s item");
    }
}
both_ways!(
    broadcast_excluding_150_users,
    broadcast_excluding_150_users_via_queue,
    broadcast_excluding_150_users_via_topic
);

async fn connections_targeting(via: Via) {
    let local = local(via).await;
    let mut chosen = Receiver::connect(&local, "chosen").await;
    // The same user on a second socket that is not targeted.
    let chosen_user = chosen.user.clone();
    let mut other_socket = Receiver {
        client: local.connect(&chosen_user).await,
        connection_id: String::new(),
        user: chosen_user.clone(),
    };
    other_socket.connection_id = eventually("the second socket's item exists", || async {
        local
            .items_of(&chosen_user)
            .await
            .iter()
            .map(|item| e2e::string(item, sumu_wire::table::CONNECTION_ID))
            .find(|id| *id != chosen.connection_id)
    })
    .await;
    let mut also_chosen = Receiver::connect(&local, "alsochosen").await;
    let data = json!({"to": "connections"});

    local
        .notify(
            via,
            &json!({"connections": [chosen.connection_id, also_chosen.connection_id], "data": data})
                .to_string(),
        )
        .await;

    chosen
        .received_exactly(&local, std::slice::from_ref(&data))
        .await;
    also_chosen.received_exactly(&local, &[data]).await;
    other_socket.received_exactly(&local, &[]).await;
}
both_ways!(
    connections_targeting,
    connections_targeting_via_queue,
    connections_targeting_via_topic
);

async fn users_with_exclude_users(via: Via) {
    let local = local(via).await;
    let mut kept = Receiver::connect(&local, "kept").await;
    let mut excluded = Receiver::connect(&local, "dropped").await;
    let mut by_connection = Receiver::connect(&local, "byconnection").await;
    let mut bystander = Receiver::connect(&local, "bystander").await;
    let data = json!({"to": "users minus excluded"});

    local
        .notify(
            via,
            &json!({
                "users": [kept.user, excluded.user],
                // Exclusion wins over a connection id, too.
                "connections": [by_connection.connection_id],
                "exclude_users": [excluded.user, by_connection.user],
                "data": data,
            })
            .to_string(),
        )
        .await;

    kept.received_exactly(&local, &[data]).await;
    excluded.received_exactly(&local, &[]).await;
    by_connection.received_exactly(&local, &[]).await;
    bystander.received_exactly(&local, &[]).await;
}
both_ways!(
    users_with_exclude_users,
    users_with_exclude_users_via_queue,
    users_with_exclude_users_via_topic
);

async fn stale_items_are_pruned(via: Via) {
    let local = local(via).await;
    let mut live = Receiver::connect(&local, "live").await;
    let mut also_live = Receiver::connect(&local, "alsolive").await;
    // A socket whose item expired: never posted to, its item deleted.
    let mut expired = Receiver::connect(&local, "expired").await;
    local.expire_item_of(&expired.user).await;
    // An item with no socket behind it: the post gets 410, the item is deleted.
    let gone_user = testkit::unique_name("gone");
    local.put_item(&gone_user, now_secs() + 3600).await;
    let data = json!({"stale": "pruned"});

    local
        .notify(
            via,
            &json!({"users": [live.user, also_live.user, expired.user, gone_user], "data": data})
                .to_string(),
        )
        .await;

    live.received_exactly(&local, std::slice::from_ref(&data))
        .await;
    also_live.received_exactly(&local, &[data]).await;
    expired.received_exactly(&local, &[]).await;
    local.until_no_item(&gone_user).await;
    local.until_no_item(&expired.user).await;
    assert_eq!(local.items_of(&live.user).await.len(), 1);
    assert_eq!(local.items_of(&also_live.user).await.len(), 1);
}
both_ways!(
    stale_items_are_pruned,
    stale_items_are_pruned_via_queue,
    stale_items_are_pruned_via_topic
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_go_to_the_dead_letter_queue_and_the_rest_of_the_batch_is_delivered() {
    let local = Local::start().await;
    let mut receiver = Receiver::connect(&local, "batch").await;
    let valid = json!({"ok": true});
    let too_large = json!({"users": [receiver.user], "data": "x".repeat(200 * 1024)}).to_string();
    let malformed = "{\"users\": [\"a\"], \"data\": ".to_string();
    let missing_data = json!({"users": [receiver.user]}).to_string();
    let entries = [
        malformed.clone(),
        missing_data.clone(),
        too_large.clone(),
        json!({"users": [receiver.user], "data": valid}).to_string(),
    ];
    let mut batch = local
        .sqs
        .send_message_batch()
        .queue_url(&local.endpoints.resources.notifications_queue_url);
    for (n, body) in entries.iter().enumerate() {
        batch = batch.entries(
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(body)
                .build()
                .expect("entry"),
        );
    }
    let sent = batch.send().await.expect("send the batch");
    assert!(sent.failed.is_empty(), "{:?}", sent.failed);

    receiver.received_exactly(&local, &[valid]).await;
    let mut letters: Vec<(String, Option<String>)> = local
        .dead_letters(3)
        .await
        .into_iter()
        .map(|letter| (letter.body, letter.reason))
        .collect();
    letters.sort();
    let mut expected = vec![
        (malformed, Some("unparseable_body".to_string())),
        (missing_data, Some("missing_data".to_string())),
        (too_large, Some("data_too_large".to_string())),
    ];
    expected.sort();
    assert_eq!(letters.len(), 3);
    for ((body, reason), (expected_body, expected_reason)) in letters.iter().zip(&expected) {
        assert_eq!(reason, expected_reason);
        assert_eq!(
            body.len(),
            expected_body.len(),
            "the body is dead-lettered unchanged"
        );
        assert_eq!(body, expected_body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_topic_message_is_dead_lettered_too() {
    let local = local(Via::Topic).await;
    let mut receiver = Receiver::connect(&local, "topic").await;
    local.notify(Via::Topic, "not json at all").await;
    let data = json!({"after": "the invalid one"});
    local
        .notify(
            Via::Topic,
            &json!({"users": [receiver.user], "data": data}).to_string(),
        )
        .await;

    receiver.received_exactly(&local, &[data]).await;
    let letters = local.dead_letters(1).await;
    assert_eq!(letters[0].body, "not json at all");
    assert_eq!(letters[0].reason.as_deref(), Some("unparseable_body"));
}
