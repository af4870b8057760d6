//! The history table's operations against moto, with testkit's one definition of the table.

use aws_sdk_dynamodb::types::AttributeValue;
use sumu_history::{HistoryTable, Kept};
use sumu_wire::{history, Channel};

const NOW: i64 = 1_800_000_000;

async fn table() -> (HistoryTable, aws_sdk_dynamodb::Client, String) {
    let dynamodb = aws_sdk_dynamodb::Client::new(&testkit::aws_config().await);
    let name = testkit::create_history_table(&dynamodb).await;
    (HistoryTable::new(dynamodb.clone(), &name), dynamodb, name)
}

fn channel(text: &str) -> Channel {
    Channel::parse(text).unwrap()
}

#[tokio::test]
async fn a_sequence_starts_at_zero_for_a_subscriber_and_counts_publications() {
    let (table, _, _) = table().await;
    let room = channel("room/1");
    assert_eq!(table.sequence(&room, NOW).await.unwrap(), None);
    let fresh = table.advance(&room, 0, NOW).await.unwrap();
    assert_eq!(fresh.top, 0);
    assert_eq!(fresh.epoch.len(), 16);
    // Making sure again changes nothing.
    assert_eq!(table.advance(&room, 0, NOW).await.unwrap(), fresh);
    let first = table.advance(&room, 1, NOW).await.unwrap();
    let second = table.advance(&room, 1, NOW).await.unwrap();
    assert_eq!((first.top, second.top), (1, 2));
    assert_eq!(second.epoch, fresh.epoch);
    assert_eq!(
        table.sequence(&room, NOW).await.unwrap(),
        Some(second.clone())
    );
    // A subscriber later does not move the time of the latest publication.
    let later = table.advance(&room, 0, NOW + 100).await.unwrap();
    assert_eq!((later.top, later.published_at), (2, NOW));
    assert_eq!(
        table
            .advance(&room, 1, NOW + 200)
            .await
            .unwrap()
            .published_at,
        NOW + 200
    );
}

#[tokio::test]
async fn an_expired_state_is_a_lost_sequence_and_a_new_epoch_starts() {
    let (table, dynamodb, name) = table().await;
    let room = channel("room/2");
    let old = table.advance(&room, 1, NOW).await.unwrap();
    // Past its expiry (TTL has not deleted it yet, as DynamoDB may take 48 hours).
    let later = NOW + history::STATE_TTL_SECONDS + 1;
    assert_eq!(table.sequence(&room, later).await.unwrap(), None);
    let new = table.advance(&room, 1, later).await.unwrap();
    assert_eq!(new.top, 1);
    assert_ne!(new.epoch, old.epoch);
    let state = dynamodb
        .get_item()
        .table_name(&name)
        .key(history::CHANNEL, AttributeValue::S("room/2".into()))
        .key(history::OFFSET, AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        state[history::EXPIRES_AT].as_n().unwrap(),
        &(later + history::STATE_TTL_SECONDS).to_string()
    );
}

#[tokio::test]
async fn reads_keep_one_epoch_and_leave_expired_items_out() {
    let (table, _, _) = table().await;
    let room = channel("room/3");
    for offset in 1..=5u64 {
        let expires_at = if offset == 2 { NOW - 1 } else { NOW + 60 };
        table
            .keep(
                &room,
                offset,
                "E",
                &format!(r#"{{"offset":{offset}}}"#),
                expires_at,
            )
            .await
            .unwrap();
    }
    table.keep(&room, 6, "other", "{}", NOW + 60).await.unwrap();
    let offsets = |kept: Vec<Kept>| {
        kept.iter()
            .map(|k| (k.offset, k.expired))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        offsets(table.read(&room, "E", (1, 6), 10, true, NOW).await.unwrap()),
        [(1, false), (2, true), (3, false), (4, false), (5, false)]
    );
    assert_eq!(
        offsets(table.read(&room, "E", (1, 6), 2, false, NOW).await.unwrap()),
        [(5, false)],
        "newest first; the limit counts items read, the other epoch's among them"
    );
    assert_eq!(
        offsets(table.read(&room, "E", (4, 4), 10, true, NOW).await.unwrap()),
        [(4, false)]
    );
    assert!(table
        .read(&room, "E", (5, 4), 10, true, NOW)
        .await
        .unwrap()
        .is_empty());
}
