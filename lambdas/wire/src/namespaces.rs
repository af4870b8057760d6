//! Channel namespaces (docs/channels.md § History and recovery): per pattern of channels, how
//! much history they keep and whether they announce joins and leaves or lifecycle events. One
//! JSON list, given to the module as `channel_namespaces`, to sumu-local as
//! `--channel-namespaces`, and to the pusher and the presence Lambda as the environment
//! variable `CHANNEL_NAMESPACES`; the first namespace whose pattern matches a channel decides.

use serde::{Deserialize, Serialize};

use crate::channels::{Channel, Pattern};

/// The most namespaces a deployment may have (the list travels in a Lambda environment
/// variable, and Lambda allows 4 KB for all of them).
pub const MAX_NAMESPACES: usize = 16;
/// The most publications one channel's history keeps.
pub const MAX_HISTORY_SIZE: u32 = 1000;
/// The longest a publication is kept: 7 days.
pub const MAX_HISTORY_TTL_SECONDS: u32 = 7 * 24 * 3600;
/// The members cap of a namespace that tracks members when it names none: Pusher's default
/// for presence channels (every join is a fan-out to the channel).
pub const DEFAULT_MAX_MEMBERS: u32 = 100;
/// The highest members cap: the channel item holds every member's id in one DynamoDB item
/// (400 KB at most), and each join or leave rewrites it.
pub const MAX_MAX_MEMBERS: u32 = 1000;

/// One namespace: `{"pattern":"room/*","history_size":100,"history_ttl_seconds":3600,
/// "join_leave":false,"lifecycle_events":false}` (every field but `pattern` optional).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    pub pattern: Pattern,
    /// How many of the latest publications are kept; 0 = no history.
    #[serde(default)]
    pub history_size: u32,
    /// How long a publication is kept, in seconds; at least 1 when `history_size` > 0.
    #[serde(default)]
    pub history_ttl_seconds: u32,
    #[serde(default)]
    pub join_leave: bool,
    #[serde(default)]
    pub lifecycle_events: bool,
    /// The most members a channel of a member-tracking namespace may have (1–1000).
    #[serde(default = "default_max_members")]
    pub max_members: u32,
}

fn default_max_members() -> u32 {
    DEFAULT_MAX_MEMBERS
}

impl Namespace {
    /// Whether this namespace's channels track their members (who subscribed to the channel
    /// itself), for join/leave frames or lifecycle events.
    pub fn tracks_members(&self) -> bool {
        self.join_leave || self.lifecycle_events
    }
}

/// What a channel's history keeps: the latest `size` publications, each for `ttl_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    pub size: u32,
    pub ttl_seconds: u32,
}

/// The deployment's namespaces, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces(Vec<Namespace>);

/// Why a namespace list was refused; the message names the namespace and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamespaceError {
    #[error("channel namespaces must be a JSON list of objects: {0}")]
    NotAList(String),
    #[error("at most {MAX_NAMESPACES} channel namespaces (got {0})")]
    TooMany(usize),
    #[error(
        "channel namespace {index} ({pattern}): history_size must be at most {MAX_HISTORY_SIZE}"
    )]
    HistoryTooLarge { index: usize, pattern: String },
    #[error("channel namespace {index} ({pattern}): history_ttl_seconds must be at most {MAX_HISTORY_TTL_SECONDS}")]
    TtlTooLong { index: usize, pattern: String },
    #[error("channel namespace {index} ({pattern}): history_ttl_seconds must be at least 1 when history_size is set")]
    TtlMissing { index: usize, pattern: String },
    #[error("channel namespace {index} ({pattern}): max_members must be 1 to {MAX_MAX_MEMBERS}")]
    MaxMembers { index: usize, pattern: String },
}

impl Namespaces {
    /// Reads and validates the JSON list; an empty or blank text is no namespace.
    pub fn parse(text: &str) -> Result<Namespaces, NamespaceError> {
        if text.trim().is_empty() {
            return Ok(Namespaces::default());
        }
        let list: Vec<Namespace> = serde_json::from_str(text)
            .map_err(|error| NamespaceError::NotAList(error.to_string()))?;
        Namespaces::new(list)
    }

    pub fn new(list: Vec<Namespace>) -> Result<Namespaces, NamespaceError> {
        if list.len() > MAX_NAMESPACES {
            return Err(NamespaceError::TooMany(list.len()));
        }
        for (index, namespace) in list.iter().enumerate() {
            let pattern = namespace.pattern.to_string();
            if namespace.history_size > MAX_HISTORY_SIZE {
                return Err(NamespaceError::HistoryTooLarge { index, pattern });
            }
            if namespace.history_ttl_seconds > MAX_HISTORY_TTL_SECONDS {
                return Err(NamespaceError::TtlTooLong { index, pattern });
            }
            if namespace.history_size > 0 && namespace.history_ttl_seconds == 0 {
                return Err(NamespaceError::TtlMissing { index, pattern });
            }
            if !(1..=MAX_MAX_MEMBERS).contains(&namespace.max_members) {
                return Err(NamespaceError::MaxMembers { index, pattern });
            }
        }
        Ok(Namespaces(list))
    }

    /// The namespace of `channel`: the first whose pattern matches it.
    pub fn of(&self, channel: &Channel) -> Option<&Namespace> {
        self.0
            .iter()
            .find(|namespace| namespace.pattern.matches(channel))
    }

    /// What `channel`'s history keeps, if it keeps one.
    pub fn history(&self, channel: &Channel) -> Option<HistoryPolicy> {
        self.of(channel)
            .filter(|namespace| namespace.history_size > 0)
            .map(|namespace| HistoryPolicy {
                size: namespace.history_size,
                ttl_seconds: namespace.history_ttl_seconds,
            })
    }

    /// The namespace of `channel` when it tracks members.
    pub fn members_of(&self, channel: &Channel) -> Option<&Namespace> {
        self.of(channel)
            .filter(|namespace| namespace.tracks_members())
    }

    /// Whether any namespace tracks members (then the members table is needed).
    pub fn tracks_members(&self) -> bool {
        self.0.iter().any(Namespace::tracks_members)
    }

    /// Whether any namespace sends `join`/`leave` frames (then the notifications queue is
    /// needed).
    pub fn announces_joins(&self) -> bool {
        self.0.iter().any(|namespace| namespace.join_leave)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any namespace keeps history (then the history table is needed).
    pub fn keeps_history(&self) -> bool {
        self.0.iter().any(|namespace| namespace.history_size > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(text: &str) -> Channel {
        Channel::parse(text).unwrap()
    }

    #[test]
    fn the_first_matching_namespace_decides() {
        let namespaces = Namespaces::parse(
            r#"[{"pattern":"room/vip/*","history_size":0},
                {"pattern":"room/*","history_size":100,"history_ttl_seconds":3600,"join_leave":true},
                {"pattern":"*","lifecycle_events":true}]"#,
        )
        .unwrap();
        assert_eq!(namespaces.history(&channel("room/vip/1")), None);
        assert_eq!(
            namespaces.history(&channel("room/42")),
            Some(HistoryPolicy {
                size: 100,
                ttl_seconds: 3600
            })
        );
        assert!(namespaces.of(&channel("room/42")).unwrap().join_leave);
        assert_eq!(
            namespaces
                .members_of(&channel("room/42"))
                .unwrap()
                .max_members,
            DEFAULT_MAX_MEMBERS
        );
        assert!(namespaces.members_of(&channel("room/vip/1")).is_none());
        assert!(namespaces.tracks_members());
        assert_eq!(namespaces.history(&channel("lobby")), None);
        assert!(namespaces.of(&channel("lobby")).unwrap().lifecycle_events);
        assert_eq!(Namespaces::parse("").unwrap(), Namespaces::default());
        assert_eq!(
            Namespaces::parse("[]").unwrap().history(&channel("a")),
            None
        );
    }

    #[test]
    fn bad_lists_are_refused_with_the_rule() {
        let many = format!(
            "[{}]",
            vec![r#"{"pattern":"a"}"#; MAX_NAMESPACES + 1].join(",")
        );
        for (text, expected) in [
            ("{}", "JSON list"),
            ("[1]", "JSON list"),
            (r#"[{"pattern":"room/**"}]"#, "JSON list"),
            (r#"[{"pattern":"a/b/c/d/e/*"}]"#, "JSON list"),
            (r#"[{"pattern":"a","history_size":-1}]"#, "JSON list"),
            (r#"[{"pattern":"a","history_size":1.5}]"#, "JSON list"),
            (r#"[{"pattern":"a","history":1}]"#, "JSON list"),
            (r#"[{"history_size":1}]"#, "JSON list"),
            (
                r#"[{"pattern":"a","history_size":1001,"history_ttl_seconds":1}]"#,
                "at most 1000",
            ),
            (
                r#"[{"pattern":"a","history_size":1,"history_ttl_seconds":604801}]"#,
                "at most 604800",
            ),
            (r#"[{"pattern":"a","history_size":1}]"#, "at least 1"),
            (
                r#"[{"pattern":"a","max_members":0}]"#,
                "max_members must be 1 to 1000",
            ),
            (
                r#"[{"pattern":"a","max_members":1001}]"#,
                "max_members must be 1 to 1000",
            ),
            (many.as_str(), "at most 16"),
        ] {
            let error = Namespaces::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
