//! Who is in a channel, through sumu-local + moto with real WebSocket clients
//! (docs/presence.md § Channel presence): `join`/`leave` frames to the channel's subscribers,
//! lifecycle events on the messages queue, the channel presence question, the members cap, and
//! the live gauges — including a storm of 200 clients connecting, subscribing and dropping at
//! once.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::channels::grants;
use e2e::notify::Receiver;
use e2e::{eventually, next_text, send_text, Client, Local};
use futures::future::join_all;
use serde_json::{json, Value};
use sumu_wire::{attributes, members, subscriptions, table};

const NAMESPACES: &str = r#"[{"pattern":"room/*","join_leave":true,"lifecycle_events":true},
                             {"pattern":"quiet/*","lifecycle_events":true},
                             {"pattern":"tiny/*","join_leave":true,"max_members":2}]"#;

/// Sends `frame` and returns the first answer that is not a join or leave frame.
async fn request(client: &mut Client, frame: Value) -> Value {
    send_text(client, &frame.to_string()).await;
    loop {
        let answer = next_text(client).await;
        if answer["type"] != "join" && answer["type"] != "leave" {
            return answer;
        }
    }
}

async fn subscribe(client: &mut Client, channel: &str) {
    let reply = request(client, json!({"action":"subscribe","channel":channel})).await;
    assert_eq!(reply, json!({"type":"subscribed","channel":channel}));
}

/// Reads frames until one is the `type` frame of `user_id`, returning the join/leave frames read.
async fn until_frame(client: &mut Client, kind: &str, user_id: &str) -> Vec<Value> {
    let mut read = Vec::new();
    loop {
        let frame = next_text(client).await;
        let done = frame["type"] == kind && frame["user_id"] == user_id;
        read.push(frame);
        if done {
            return read;
        }
    }
}

/// The lifecycle events a back end reads from the messages queue, in arrival order.
struct Backend<'a> {
    local: &'a Local,
    events: Vec<(Value, HashMap<String, String>)>,
}

impl<'a> Backend<'a> {
    fn new(local: &'a Local) -> Backend<'a> {
        Backend {
            local,
            events: Vec::new(),
        }
    }

    async fn receive(&mut self) {
        let queue_url = &self.local.endpoints.resources.messages_queue_url;
        let received = self
            .local
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .message_attribute_names("All")
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive from the messages queue");
        for message in received.messages.unwrap_or_default() {
            self.local
                .sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete a read message");
            let body: Value = serde_json::from_str(message.body().unwrap_or_default()).unwrap();
            if body["type"] == "channel" || body["type"] == "membership" {
                let attributes = message
                    .message_attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| (name, value.string_value().unwrap_or_default().into()))
                    .collect();
                self.events.push((body, attributes));
            }
        }
    }

    /// (channel, status, user or members) of every event so far.
    fn summary(&self) -> Vec<(String, String, String)> {
        self.events
            .iter()
            .map(|(event, _)| {
                let message = &event["message"];
                let who = match event["type"].as_str() {
                    Some("membership") => message["user_id"].as_str().unwrap().to_owned(),
                    _ => message["members"].to_string(),
                };
                (
                    message["channel"].as_str().unwrap().to_owned(),
                    message["status"].as_str().unwrap().to_owned(),
                    who,
                )
            })
            .collect()
    }

    /// Receives until `count` events arrived, then until the queue stays quiet for a receive.
    async fn until(&mut self, count: usize) {
        let deadline = tokio::time::Instant::now() + e2e::DEADLINE * 4;
        while self.events.len() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {count} lifecycle events; got {:?}",
                self.summary()
            );
            self.receive().await;
        }
        // Anything more (a second transition that should not exist) would come now.
        self.receive().await;
    }
}

fn event(channel: &str, status: &str, who: &str) -> (String, String, String) {
    (channel.into(), status.into(), who.into())
}

async fn members_of(client: &mut Client, channel: &str) -> Value {
    request(
        client,
        json!({"action":"presence","channel":channel,"ref":"p"}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_two_tabs_joins_once_and_leaves_once() {
    let local = Local::start_with_members(NAMESPACES).await;
    let mut backend = Backend::new(&local);
    let room_grants = grants(&["room/*"], &[]);
    let mut watcher = local.receiver_with_grants("watcher", &room_grants).await;
    subscribe(&mut watcher.client, "room/1").await;
    // A pattern subscriber listens to the room's frames without being a member.
    let mut listener = local.receiver_with_grants("listener", &room_grants).await;
    subscribe(&mut listener.client, "room/*").await;

    let alice = testkit::unique_name("alice");
    let token = local.token_with_grants(&alice, &room_grants);
    let mut tab1 = local.connect_with_token(&token).await;
    let mut tab2 = local.connect_with_token(&token).await;
    subscribe(&mut tab1, "room/1").await;
    subscribe(&mut tab2, "room/1").await;

    let read = until_frame(&mut watcher.client, "join", &alice).await;
    assert_eq!(
        read.last().unwrap(),
        &json!({"type":"join","channel":"room/1","user_id":alice})
    );
    until_frame(&mut listener.client, "join", &alice).await;

    let answer = members_of(&mut watcher.client, "room/1").await;
    let mut expected = vec![
        json!({"user_id": alice, "connections": 2}),
        json!({"user_id": watcher.user, "connections": 1}),
    ];
    expected.sort_by_key(|member| member["user_id"].as_str().unwrap().to_owned());
    assert_eq!(
        answer,
        json!({"type":"presence","channel":"room/1","members":expected,"more":false,"ref":"p"})
    );

    // Closing one tab is not a leave; closing the other is, once.
    drop(tab1);
    drop(tab2);
    let read = until_frame(&mut watcher.client, "leave", &alice).await;
    let joins_and_leaves: Vec<&Value> = read
        .iter()
        .filter(|frame| frame["user_id"] == alice.as_str())
        .collect();
    assert_eq!(
        joins_and_leaves,
        [&json!({"type":"leave","channel":"room/1","user_id":alice})],
        "one leave for two tabs, no second join"
    );
    until_frame(&mut listener.client, "leave", &alice).await;

    backend.until(4).await;
    let watcher_id = watcher.user.clone();
    assert_eq!(
        backend.summary(),
        [
            event("room/1", "OCCUPIED", "1"),
            event("room/1", "JOINED", &watcher_id),
            event("room/1", "JOINED", &alice),
            event("room/1", "LEFT", &alice),
        ],
        "the pattern listener is no member; two tabs join and leave once"
    );
    let (occupied, attributes) = &backend.events[0];
    assert_eq!(
        attributes.get(attributes::SOURCE).map(String::as_str),
        Some("lambda.presence.channels")
    );
    assert_eq!(
        attributes.get("channel").map(String::as_str),
        Some("room/1")
    );
    assert!(occupied["message"]["timestamp"].as_i64().unwrap() > 0);

    // The last member goes: LEFT then VACATED.
    let watcher_connection = watcher.connection_id.clone();
    drop(watcher);
    local.until_no_subscriptions(&watcher_connection).await;
    backend.until(6).await;
    assert_eq!(
        backend.summary()[4..],
        [
            event("room/1", "LEFT", &watcher_id),
            event("room/1", "VACATED", "0")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_tcp_connection_leaves_and_the_cap_refuses_a_third_member() {
    let local = Local::start_with_members(NAMESPACES).await;
    let tiny = grants(&["tiny/*"], &[]);
    let mut first = local.receiver_with_grants("first", &tiny).await;
    subscribe(&mut first.client, "tiny/1").await;
    let mut second = local.receiver_with_grants("second", &tiny).await;
    subscribe(&mut second.client, "tiny/1").await;
    until_frame(&mut first.client, "join", &second.user).await;

    // Full: a third user is refused and nothing changes; a second tab of a member is not.
    let mut third = local.receiver_with_grants("third", &tiny).await;
    let refused = request(
        &mut third.client,
        json!({"action":"subscribe","channel":"tiny/1","ref":"t"}),
    )
    .await;
    assert_eq!(
        refused,
        json!({"type":"error","error":"too_many_members","channel":"tiny/1",
               "message":"the channel has its maximum of 2 members","ref":"t"})
    );
    assert!(local
        .subscriptions_of(&third.connection_id)
        .await
        .is_empty());
    let mut second_tab = local
        .connect_with_token(&local.token_with_grants(&second.user, &tiny))
        .await;
    subscribe(&mut second_tab, "tiny/1").await;

    // The first user's TCP connection vanishes (no close frame): it leaves.
    e2e::vanish(first.client);
    let read = until_frame(&mut second.client, "leave", &first.user).await;
    assert!(
        read.iter()
            .all(|frame| frame["user_id"] != third.user.as_str()),
        "the refused user never joined: {read:?}"
    );
    // Room again (the leave frame goes out after the member count dropped): the third joins.
    subscribe(&mut third.client, "tiny/1").await;
    let answer = members_of(&mut second.client, "tiny/1").await;
    let users: Vec<&str> = answer["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["user_id"].as_str().unwrap())
        .collect();
    let mut expected = vec![second.user.as_str(), third.user.as_str()];
    expected.sort();
    assert_eq!(users, expected, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presence_question_is_grant_checked_and_names_one_channel() {
    let local = Local::start_with_members(NAMESPACES).await;
    let mut client = local
        .receiver_with_grants("asker", &grants(&["room/1"], &[]))
        .await;
    for (question, error) in [
        (json!({"action":"presence","channel":"room/2"}), "forbidden"),
        (
            json!({"action":"presence","channel":"room/*"}),
            "invalid_channel",
        ),
        (json!({"action":"presence","channel":7}), "invalid_channel"),
        (
            json!({"action":"presence","channel":"room/1","after":5}),
            "invalid_request",
        ),
    ] {
        let answer = request(&mut client.client, question.clone()).await;
        assert_eq!(answer["type"], "error", "{question} → {answer}");
        assert_eq!(answer["error"], error, "{question} → {answer}");
    }
    // A channel nobody is in: no members.
    let answer = request(
        &mut client.client,
        json!({"action":"presence","channel":"room/1"}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"type":"presence","channel":"room/1","members":[],"more":false})
    );
}

/// Counts what the tables hold: live connection items, subscription items, and each channel's
/// members by user (the subscribers of the channel itself).
async fn table_counts(local: &Local, channel: &str) -> (i64, i64, BTreeMap<String, u32>) {
    let scan = |table: String| async move {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = local
                .dynamodb
                .scan()
                .table_name(&table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    };
    let resources = &local.endpoints.resources;
    let connections = scan(resources.connections_table.clone()).await;
    let subscriptions = scan(resources.subscriptions_table.clone()).await;
    let mut members = BTreeMap::new();
    for item in &subscriptions {
        if e2e::string(item, subscriptions::CHANNEL) == channel {
            *members
                .entry(e2e::string(item, subscriptions::USER_ID))
                .or_insert(0) += 1;
        }
    }
    let live = connections
        .iter()
        .filter(|item| e2e::number(item, table::EXPIRES_AT) > e2e::now_secs())
        .count();
    (live as i64, subscriptions.len() as i64, members)
}

async fn gauges(local: &Local) -> (i64, i64) {
    let item = local
        .dynamodb
        .get_item()
        .table_name(&local.endpoints.resources.members_table)
        .key(
            members::table::CHANNEL,
            AttributeValue::S(members::table::GAUGE_KEY.into()),
        )
        .key(
            members::table::USER_ID,
            AttributeValue::S(members::table::GAUGE_USER.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .expect("get the gauge item")
        .item
        .unwrap_or_default();
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().unwrap(),
        _ => 0,
    };
    (
        number(members::table::GAUGE_CONNECTIONS),
        number(members::table::GAUGE_SUBSCRIPTIONS),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_200_clients_subscribing_unsubscribing_and_dropping_leaves_members_events_and_gauges_matching_the_tables(
) {
    const CLIENTS: usize = 200;
    let local = Local::start_with_members(NAMESPACES).await;
    let mut backend = Backend::new(&local);
    let quiet = grants(&["quiet/*"], &[]);
    // 200 users connect and subscribe at once.
    let clients: Vec<Receiver> = join_all((0..CLIENTS).map(|_| {
        let local = &local;
        let quiet = &quiet;
        async move {
            let mut client = local.receiver_with_grants("storm", quiet).await;
            subscribe(&mut client.client, "quiet/storm").await;
            client
        }
    }))
    .await;
    // Three quarters leave at once: a quarter vanishes, a quarter closes properly, a quarter
    // unsubscribes and stays connected; the last quarter stays.
    let mut staying = Vec::new();
    let mut unsubscribing = Vec::new();
    let mut dropping = Vec::new();
    for (index, client) in clients.into_iter().enumerate() {
        match index % 4 {
            0 => staying.push(client),
            1 => unsubscribing.push(client),
            _ => dropping.push(client),
        }
    }
    let gone_users: Vec<String> = unsubscribing
        .iter()
        .chain(&dropping)
        .map(|client| client.user.clone())
        .collect();
    let gone_connections: Vec<String> = unsubscribing
        .iter()
        .chain(&dropping)
        .map(|client| client.connection_id.clone())
        .collect();
    let unsubscribes = join_all(unsubscribing.iter_mut().map(|client| async {
        let reply = request(
            &mut client.client,
            json!({"action":"unsubscribe","channel":"quiet/storm"}),
        )
        .await;
        assert_eq!(
            reply,
            json!({"type":"unsubscribed","channel":"quiet/storm"})
        );
    }));
    let drops = async {
        for (index, client) in dropping.into_iter().enumerate() {
            if index % 2 == 0 {
                e2e::vanish(client.client);
            } else {
                drop(client.client);
            }
        }
    };
    tokio::join!(unsubscribes, drops);
    for connection in &gone_connections {
        local.until_no_subscriptions(connection).await;
    }
    const LEFT: usize = CLIENTS / 4 * 3;

    // Every join once, every leave once, one OCCUPIED, no VACATED (a quarter stays).
    backend.until(1 + CLIENTS + LEFT).await;
    let summary = backend.summary();
    let count = |status: &str| summary.iter().filter(|(_, s, _)| s == status).count();
    assert_eq!(count("OCCUPIED"), 1, "{summary:?}");
    assert_eq!(count("VACATED"), 0, "{summary:?}");
    assert_eq!(count("JOINED"), CLIENTS, "{summary:?}");
    assert_eq!(count("LEFT"), LEFT, "{summary:?}");
    let mut left: Vec<&str> = summary
        .iter()
        .filter(|(_, status, _)| status == "LEFT")
        .map(|(_, _, user)| user.as_str())
        .collect();
    left.sort_unstable();
    let mut expected_left: Vec<&str> = gone_users.iter().map(String::as_str).collect();
    expected_left.sort_unstable();
    assert_eq!(left, expected_left, "each user who left left once");

    // The presence answer and the gauges match the tables.
    let (live, subscription_items, members) = table_counts(&local, "quiet/storm").await;
    assert_eq!(members.len(), CLIENTS / 4);
    let mut asker = staying.pop().unwrap();
    let mut answered = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut question = json!({"action":"presence","channel":"quiet/storm"});
        if let Some(after) = &after {
            question["after"] = json!(after);
        }
        let answer = request(&mut asker.client, question).await;
        for member in answer["members"].as_array().unwrap() {
            answered.insert(
                member["user_id"].as_str().unwrap().to_owned(),
                member["connections"].as_u64().unwrap() as u32,
            );
        }
        if answer["more"] != true {
            break;
        }
        after = answered.keys().last().cloned();
    }
    assert_eq!(answered, members);
    eventually("the gauges match the tables", || async {
        let measured = gauges(&local).await;
        (measured == (live, subscription_items)).then_some(())
    })
    .await;
    // Those who stayed and those who only unsubscribed are connected; those who stayed alone
    // are subscribed.
    assert_eq!(
        (live, subscription_items),
        (CLIENTS as i64 / 2, CLIENTS as i64 / 4)
    );
    drop(unsubscribing);
}
