//! Channel names, subscription patterns and grants (DESIGN.md § Channels), shared by the
//! authorizer (which validates grants at `$connect`), the routes that subscribe and emit, the
//! pusher (which finds subscribers) and the development identity provider. Pure: no I/O.
//!
//! - A [`Channel`] is 1–5 segments joined by `/`; a segment is 1–64 characters of
//!   `A-Z a-z 0-9 _ - . : @ = + |`; at most 256 bytes in all.
//! - A [`Pattern`] is a channel, a channel prefix followed by `/*` (every channel *below* that
//!   prefix, at any depth; not the prefix itself), or `*` (every channel). A pattern that could
//!   match no channel is refused: the prefix of `prefix/*` has at most 4 segments and the
//!   pattern at most 256 bytes, exactly the prefixes some channel lies below.
//! - A grant covers a pattern when every channel the pattern matches is matched by the grant
//!   ([`Pattern::covers`]): `room/*` covers `room/42`, `room/*` and `room/a/*`; `*` covers
//!   everything; an exact grant covers only itself.
//! - A publication to channel C reaches the subscriptions stored under the partitions
//!   [`Channel::partitions`] lists: C, each ancestor prefix as `prefix/*`, and `*`. A pattern
//!   matches C iff it is one of them, so one Query per partition finds every subscriber and
//!   never a Scan.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most segments in a channel.
pub const MAX_SEGMENTS: usize = 5;
/// Most characters in one segment.
pub const MAX_SEGMENT_CHARS: usize = 64;
/// Most bytes in a channel or a pattern.
pub const MAX_CHANNEL_BYTES: usize = 256;
/// The pattern matching every channel.
pub const WILDCARD: &str = "*";
/// Separator of segments.
pub const SEPARATOR: char = '/';

/// The default name of the token claim holding a connection's grants.
pub const DEFAULT_GRANTS_CLAIM: &str = "channels";

/// The `error` values of channel error frames (`{"type":"error","error":E,…}`).
pub mod reasons {
    /// No grant covers the channel or pattern.
    pub const FORBIDDEN: &str = "forbidden";
    /// Bad name or pattern, or none given.
    pub const INVALID_CHANNEL: &str = "invalid_channel";
    /// Over the per-connection subscription cap.
    pub const TOO_MANY_SUBSCRIPTIONS: &str = "too_many_subscriptions";
    /// `emit` without `data`, or with too large a `data`.
    pub const INVALID_MESSAGE: &str = "invalid_message";
}

/// Keys of the authorizer context (`$context.authorizer.<key>`) carrying a connection's
/// grants: each value is one string, the patterns joined by single spaces (a space is not
/// allowed in a pattern), empty for none. See [`encode_patterns`].
pub mod context {
    pub const SUBSCRIBE: &str = "channels_subscribe";
    pub const PUBLISH: &str = "channels_publish";
}

/// Why a channel name or pattern is refused. Every variant is the `invalid_channel` reason
/// ([`ChannelError::reason`]); the message says which rule was broken and is safe to send
/// back to the client (characters are shown escaped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("no channel given")]
    Missing,
    #[error("the channel must be a string")]
    NotAString,
    #[error("the channel is empty")]
    Empty,
    #[error("the channel has {bytes} bytes (at most 256)")]
    TooLong { bytes: usize },
    #[error("the channel has {segments} segments (at most 5)")]
    TooManySegments { segments: usize },
    #[error("empty segment (a leading, trailing or doubled `/`)")]
    EmptySegment,
    #[error("a segment has {chars} characters (at most 64)")]
    SegmentTooLong { chars: usize },
    #[error("character {character:?} is not allowed (A-Z a-z 0-9 _ - . : @ = + |)")]
    InvalidCharacter { character: char },
    #[error("`*` is only allowed alone or as the last segment of a pattern (`prefix/*`)")]
    MisplacedWildcard,
    #[error("a channel cannot contain a wildcard")]
    WildcardInChannel,
    #[error("`prefix/*` with {segments} segments before `/*` matches no channel (at most 4)")]
    PrefixTooDeep { segments: usize },
}

impl ChannelError {
    /// The `error` of the error frame: always `invalid_channel`.
    pub fn reason(&self) -> &'static str {
        reasons::INVALID_CHANNEL
    }
}

/// Whether `c` may appear in a segment.
pub fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@' | '=' | '+' | '|')
}

/// Checks one segment (also used to decide whether a principal may stand for `{sub}`).
pub fn validate_segment(segment: &str) -> Result<(), ChannelError> {
    if segment.is_empty() {
        return Err(ChannelError::EmptySegment);
    }
    if let Some(character) = segment.chars().find(|c| !is_segment_char(*c)) {
        return Err(if character == '*' {
            ChannelError::MisplacedWildcard
        } else {
            ChannelError::InvalidCharacter { character }
        });
    }
    // Only ASCII is left, so bytes are characters.
    if segment.len() > MAX_SEGMENT_CHARS {
        return Err(ChannelError::SegmentTooLong {
            chars: segment.len(),
        });
    }
    Ok(())
}

/// A valid channel name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Channel(String);

impl Channel {
    pub fn parse(text: &str) -> Result<Channel, ChannelError> {
        if text.is_empty() {
            return Err(ChannelError::Empty);
        }
        if text.len() > MAX_CHANNEL_BYTES {
            return Err(ChannelError::TooLong { bytes: text.len() });
        }
        let segments = text.split(SEPARATOR).count();
        if segments > MAX_SEGMENTS {
            return Err(ChannelError::TooManySegments { segments });
        }
        for segment in text.split(SEPARATOR) {
            match validate_segment(segment) {
                Err(ChannelError::MisplacedWildcard) if segment == WILDCARD => {
                    return Err(ChannelError::WildcardInChannel)
                }
                other => other?,
            }
        }
        Ok(Channel(text.to_string()))
    }

    /// The `channel` field of a client frame: absent or `null` is [`ChannelError::Missing`],
    /// any other non-string [`ChannelError::NotAString`].
    pub fn from_json(value: Option<&Value>) -> Result<Channel, ChannelError> {
        Channel::parse(json_text(value)?)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split(SEPARATOR)
    }

    /// The partitions a publication to this channel must query, one Query each: the channel
    /// itself, each ancestor prefix as `prefix/*` from the shallowest down, then `*`.
    /// `room/a/42` → `room/a/42`, `room/*`, `room/a/*`, `*`. A pattern matches this channel
    /// iff it is in this list.
    pub fn partitions(&self) -> Vec<Pattern> {
        let mut partitions = Vec::with_capacity(MAX_SEGMENTS + 1);
        partitions.push(Pattern::Exact(self.clone()));
        partitions.extend(
            self.0
                .match_indices(SEPARATOR)
                .map(|(at, _)| Pattern::Below(Channel(self.0[..at].to_string()))),
        );
        partitions.push(Pattern::All);
        partitions
    }

    /// Whether `other` lies strictly below this channel (`room` → `room/42`, `room/a/b`).
    fn is_ancestor_of(&self, other: &Channel) -> bool {
        other.0.len() > self.0.len()
            && other.0.starts_with(&self.0)
            && other.0.as_bytes()[self.0.len()] == SEPARATOR as u8
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Channel {
    type Err = ChannelError;
    fn from_str(text: &str) -> Result<Channel, ChannelError> {
        Channel::parse(text)
    }
}

impl TryFrom<String> for Channel {
    type Error = ChannelError;
    fn try_from(text: String) -> Result<Channel, ChannelError> {
        Channel::parse(&text)
    }
}

impl From<Channel> for String {
    fn from(channel: Channel) -> String {
        channel.0
    }
}

/// A subscription or a grant: which channels it matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Pattern {
    /// One channel.
    Exact(Channel),
    /// `prefix/*`: every channel strictly below the prefix, at any depth.
    Below(Channel),
    /// `*`: every channel.
    All,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, ChannelError> {
        if text == WILDCARD {
            return Ok(Pattern::All);
        }
        if text.len() > MAX_CHANNEL_BYTES {
            return Err(ChannelError::TooLong { bytes: text.len() });
        }
        match text.strip_suffix("/*") {
            Some(prefix) => {
                let prefix = Channel::parse(prefix).map_err(|error| match error {
                    ChannelError::WildcardInChannel => ChannelError::MisplacedWildcard,
                    other => other,
                })?;
                let segments = prefix.segments().count();
                if segments >= MAX_SEGMENTS {
                    return Err(ChannelError::PrefixTooDeep { segments });
                }
                Ok(Pattern::Below(prefix))
            }
            None => Channel::parse(text)
                .map(Pattern::Exact)
                .map_err(|error| match error {
                    ChannelError::WildcardInChannel => ChannelError::MisplacedWildcard,
                    other => other,
                }),
        }
    }

    /// The `channel` field of a `subscribe`/`unsubscribe` frame (see [`Channel::from_json`]).
    pub fn from_json(value: Option<&Value>) -> Result<Pattern, ChannelError> {
        Pattern::parse(json_text(value)?)
    }

    /// The length of the pattern's text in bytes, without writing it.
    pub fn text_len(&self) -> usize {
        match self {
            Pattern::Exact(channel) => channel.0.len(),
            Pattern::Below(prefix) => prefix.0.len() + 2,
            Pattern::All => WILDCARD.len(),
        }
    }

    /// Whether a publication to `channel` reaches a subscription with this pattern.
    pub fn matches(&self, channel: &Channel) -> bool {
        match self {
            Pattern::Exact(exact) => exact == channel,
            Pattern::Below(prefix) => prefix.is_ancestor_of(channel),
            Pattern::All => true,
        }
    }

    /// Whether this grant covers `wanted`: every channel `wanted` matches, this matches too.
    pub fn covers(&self, wanted: &Pattern) -> bool {
        match (self, wanted) {
            (Pattern::All, _) => true,
            (Pattern::Exact(granted), Pattern::Exact(wanted)) => granted == wanted,
            (Pattern::Exact(_), _) => false,
            (Pattern::Below(_), Pattern::All) => false,
            (Pattern::Below(_), Pattern::Exact(channel)) => self.matches(channel),
            (Pattern::Below(granted), Pattern::Below(wanted)) => {
                granted == wanted || granted.is_ancestor_of(wanted)
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(channel) => f.write_str(channel.as_str()),
            Pattern::Below(prefix) => write!(f, "{prefix}/*"),
            Pattern::All => f.write_str(WILDCARD),
        }
    }
}

impl FromStr for Pattern {
    type Err = ChannelError;
    fn from_str(text: &str) -> Result<Pattern, ChannelError> {
        Pattern::parse(text)
    }
}

impl TryFrom<String> for Pattern {
    type Error = ChannelError;
    fn try_from(text: String) -> Result<Pattern, ChannelError> {
        Pattern::parse(&text)
    }
}

impl From<Pattern> for String {
    fn from(pattern: Pattern) -> String {
        pattern.to_string()
    }
}

impl From<Channel> for Pattern {
    fn from(channel: Channel) -> Pattern {
        Pattern::Exact(channel)
    }
}

fn json_text(value: Option<&Value>) -> Result<&str, ChannelError> {
    match value {
        None | Some(Value::Null) => Err(ChannelError::Missing),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(ChannelError::NotAString),
    }
}

/// What a connection may do with channels, decided at `$connect`. Also the JSON shape of the
/// grants claim: `{"subscribe":[patterns],"publish":[patterns]}` (either list may be absent;
/// other keys are refused, so a misspelt key is noticed instead of silently granting nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    #[serde(default)]
    pub subscribe: Vec<Pattern>,
    #[serde(default)]
    pub publish: Vec<Pattern>,
}

impl Grants {
    /// Whether the connection may subscribe to `wanted` (a channel or a pattern).
    pub fn may_subscribe(&self, wanted: &Pattern) -> bool {
        self.subscribe.iter().any(|grant| grant.covers(wanted))
    }

    /// Whether the connection may emit on `channel`.
    pub fn may_publish(&self, channel: &Channel) -> bool {
        self.publish.iter().any(|grant| grant.matches(channel))
    }

    pub fn is_empty(&self) -> bool {
        self.subscribe.is_empty() && self.publish.is_empty()
    }

    /// These grants followed by `more`'s, each pattern once (first occurrence kept).
    pub fn merged(mut self, more: Grants) -> Grants {
        self.subscribe.extend(more.subscribe);
        self.publish.extend(more.publish);
        self.subscribe = unique(self.subscribe);
        self.publish = unique(self.publish);
        self
    }

    /// The two authorizer context values: ([`context::SUBSCRIBE`], [`context::PUBLISH`]).
    pub fn to_context_values(&self) -> (String, String) {
        (
            encode_patterns(&self.subscribe),
            encode_patterns(&self.publish),
        )
    }

    /// Reads the grants back from the two authorizer context values (absent = empty).
    pub fn from_context_values(
        subscribe: Option<&str>,
        publish: Option<&str>,
    ) -> Result<Grants, ChannelError> {
        Ok(Grants {
            subscribe: decode_patterns(subscribe.unwrap_or(""))?,
            publish: decode_patterns(publish.unwrap_or(""))?,
        })
    }

    /// The bytes the two context values take.
    pub fn context_bytes(&self) -> usize {
        encoded_len(&self.subscribe) + encoded_len(&self.publish)
    }
}

fn unique(patterns: Vec<Pattern>) -> Vec<Pattern> {
    let mut seen = HashSet::new();
    patterns
        .into_iter()
        .filter(|pattern| seen.insert(pattern.clone()))
        .collect()
}

/// The patterns joined by single spaces (`room/* user/alice`); empty for none.
pub fn encode_patterns(patterns: &[Pattern]) -> String {
    patterns
        .iter()
        .map(Pattern::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The inverse of [`encode_patterns`]; runs of spaces are tolerated, any bad pattern fails.
pub fn decode_patterns(encoded: &str) -> Result<Vec<Pattern>, ChannelError> {
    encoded
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(Pattern::parse)
        .collect()
}

fn encoded_len(patterns: &[Pattern]) -> usize {
    let text: usize = patterns.iter().map(Pattern::text_len).sum();
    text + patterns.len().saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn channel(text: &str) -> Channel {
        Channel::parse(text).unwrap()
    }

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    #[test]
    fn valid_channels() {
        for text in [
            "a",
            "room/42",
            "a/b/c/d/e",
            "user/auth0|5f7c8ec7c33c6c004bbafe82",
            "x_y-z.w:v@u=t+s|r",
            &"x".repeat(64),
            // 256 bytes
            &[
                "y".repeat(64),
                "y".repeat(64),
                "y".repeat(64),
                "y".repeat(61),
            ]
            .join("/"),
        ] {
            assert_eq!(channel(text).as_str(), text);
        }
    }

    #[test]
    fn invalid_channels_and_why() {
        use ChannelError::*;
        let cases: Vec<(String, ChannelError)> = vec![
            ("".into(), Empty),
            ("room//42".into(), EmptySegment),
            ("/room".into(), EmptySegment),
            ("room/".into(), EmptySegment),
            ("/".into(), EmptySegment),
            ("a/b/c/d/e/f".into(), TooManySegments { segments: 6 }),
            ("x".repeat(65), SegmentTooLong { chars: 65 }),
            (
                [
                    "y".repeat(64),
                    "y".repeat(64),
                    "y".repeat(64),
                    "y".repeat(62),
                ]
                .join("/"),
                TooLong { bytes: 257 },
            ),
            ("room\"42".into(), InvalidCharacter { character: '"' }),
            ("room\\42".into(), InvalidCharacter { character: '\\' }),
            ("room'42".into(), InvalidCharacter { character: '\'' }),
            ("room 42".into(), InvalidCharacter { character: ' ' }),
            ("huone/ä".into(), InvalidCharacter { character: 'ä' }),
            ("room\n".into(), InvalidCharacter { character: '\n' }),
            ("room\u{0}".into(), InvalidCharacter { character: '\u{0}' }),
            ("room,42".into(), InvalidCharacter { character: ',' }),
            ("{sub}".into(), InvalidCharacter { character: '{' }),
            ("room*".into(), MisplacedWildcard),
            ("ro*om/1".into(), MisplacedWildcard),
            ("room/*".into(), WildcardInChannel),
            ("*".into(), WildcardInChannel),
        ];
        for (text, expected) in cases {
            let error = Channel::parse(&text).unwrap_err();
            assert_eq!(error, expected, "{text:?}");
            assert_eq!(error.reason(), "invalid_channel");
        }
    }

    #[test]
    fn patterns_parse_to_their_kind_and_print_back() {
        assert_eq!(pattern("*"), Pattern::All);
        assert_eq!(pattern("room/*"), Pattern::Below(channel("room")));
        assert_eq!(pattern("a/b/c/d/*"), Pattern::Below(channel("a/b/c/d")));
        assert_eq!(pattern("room/42"), Pattern::Exact(channel("room/42")));
        for text in ["*", "room/*", "a/b/c/d/*", "room/42", "a/b/c/d/e"] {
            assert_eq!(pattern(text).to_string(), text);
            assert_eq!(pattern(text).text_len(), text.len());
        }
    }

    #[test]
    fn invalid_patterns_and_why() {
        use ChannelError::*;
        // The longest prefix some channel lies below: 254 bytes, so `prefix/x` has 256.
        let prefix = |last: usize| {
            [
                "y".repeat(64),
                "y".repeat(64),
                "y".repeat(64),
                "y".repeat(last),
            ]
            .join("/")
        };
        assert_eq!(
            pattern(&format!("{}/*", prefix(59))),
            Pattern::Below(channel(&prefix(59)))
        );
        assert_eq!(
            Pattern::parse(&format!("{}/*", prefix(60))).unwrap_err(),
            TooLong { bytes: 257 }
        );
        for (text, expected) in [
            ("", Empty),
            ("**", MisplacedWildcard),
            ("room/**", MisplacedWildcard),
            ("room/*/42", MisplacedWildcard),
            ("*/room", MisplacedWildcard),
            ("room/4*", MisplacedWildcard),
            ("/*", Empty),
            ("room//*", EmptySegment),
            ("room/*/", MisplacedWildcard),
            ("a/b/c/d/e/*", PrefixTooDeep { segments: 5 }),
            ("a/b/c/d/e/f", TooManySegments { segments: 6 }),
            ("room/ *", InvalidCharacter { character: ' ' }),
        ] {
            assert_eq!(Pattern::parse(text).unwrap_err(), expected, "{text:?}");
        }
    }

    #[test]
    fn json_values_that_are_not_strings() {
        assert_eq!(Pattern::from_json(None), Err(ChannelError::Missing));
        assert_eq!(
            Pattern::from_json(Some(&json!(null))),
            Err(ChannelError::Missing)
        );
        assert_eq!(
            Pattern::from_json(Some(&json!(42))),
            Err(ChannelError::NotAString)
        );
        assert_eq!(
            Channel::from_json(Some(&json!({"room": 1}))),
            Err(ChannelError::NotAString)
        );
        assert_eq!(
            Channel::from_json(Some(&json!(["room/1"]))),
            Err(ChannelError::NotAString)
        );
        assert_eq!(
            Pattern::from_json(Some(&json!("room/*"))),
            Ok(pattern("room/*"))
        );
    }

    #[test]
    fn matching() {
        assert!(pattern("room/42").matches(&channel("room/42")));
        assert!(!pattern("room/42").matches(&channel("room/43")));
        assert!(!pattern("room/42").matches(&channel("room/42/x")));
        assert!(pattern("room/*").matches(&channel("room/42")));
        assert!(pattern("room/*").matches(&channel("room/a/b/c/d")));
        assert!(
            !pattern("room/*").matches(&channel("room")),
            "below, not the prefix itself"
        );
        assert!(
            !pattern("room/*").matches(&channel("rooms/1")),
            "segment-wise prefix"
        );
        assert!(!pattern("room/*").matches(&channel("lobby/room")));
        assert!(pattern("*").matches(&channel("anything/at/all")));
    }

    #[test]
    fn coverage_of_grants() {
        let room = pattern("room/*");
        assert!(room.covers(&pattern("room/42")));
        assert!(room.covers(&pattern("room/a/*")));
        assert!(room.covers(&pattern("room/*")));
        assert!(!room.covers(&pattern("room")));
        assert!(!room.covers(&pattern("rooms/*")));
        assert!(!room.covers(&pattern("*")));
        let all = pattern("*");
        for wanted in ["*", "room/*", "room/42", "a/b/c/d/e"] {
            assert!(all.covers(&pattern(wanted)), "{wanted}");
        }
        let exact = pattern("room/42");
        assert!(exact.covers(&pattern("room/42")));
        assert!(!exact.covers(&pattern("room/42/*")));
        assert!(!exact.covers(&pattern("room/*")));
        assert!(!exact.covers(&pattern("room/43")));
    }

    #[test]
    fn partitions_of_a_publication() {
        let listed = |text: &str| -> Vec<String> {
            channel(text)
                .partitions()
                .iter()
                .map(Pattern::to_string)
                .collect()
        };
        assert_eq!(listed("lobby"), ["lobby", "*"]);
        assert_eq!(listed("room/42"), ["room/42", "room/*", "*"]);
        assert_eq!(
            listed("a/b/c/d/e"),
            ["a/b/c/d/e", "a/*", "a/b/*", "a/b/c/*", "a/b/c/d/*", "*"]
        );
    }

    #[test]
    fn grants_decide_subscribe_and_publish() {
        let grants = Grants {
            subscribe: vec![pattern("room/*"), pattern("user/alice")],
            publish: vec![pattern("room/42")],
        };
        assert!(grants.may_subscribe(&pattern("room/a/*")));
        assert!(grants.may_subscribe(&pattern("user/alice")));
        assert!(!grants.may_subscribe(&pattern("user/bob")));
        assert!(!grants.may_subscribe(&pattern("*")));
        assert!(grants.may_publish(&channel("room/42")));
        assert!(!grants.may_publish(&channel("room/43")));
        assert!(
            !Grants::default().may_subscribe(&pattern("room/42")),
            "default: no grant"
        );
    }

    #[test]
    fn the_claim_shape_parses_strictly() {
        let grants: Grants =
            serde_json::from_value(json!({"subscribe": ["room/*"], "publish": []})).unwrap();
        assert_eq!(grants.subscribe, [pattern("room/*")]);
        let only_publish: Grants = serde_json::from_value(json!({"publish": ["*"]})).unwrap();
        assert!(only_publish.subscribe.is_empty());
        for bad in [
            json!("room/*"),
            json!(["room/*"]),
            json!({"subscribe": "room/*"}),
            json!({"subscribe": ["room/**"]}),
            json!({"subscribe": [42]}),
            json!({"subcribe": ["room/*"]}),
        ] {
            assert!(
                serde_json::from_value::<Grants>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            serde_json::to_value(&grants).unwrap(),
            json!({"subscribe": ["room/*"], "publish": []})
        );
    }

    #[test]
    fn merging_keeps_the_first_of_each_pattern() {
        let a = Grants {
            subscribe: vec![pattern("public/*"), pattern("user/alice")],
            publish: vec![],
        };
        let b = Grants {
            subscribe: vec![pattern("user/alice"), pattern("room/*"), pattern("room/*")],
            publish: vec![pattern("room/*")],
        };
        let merged = a.merged(b);
        assert_eq!(
            encode_patterns(&merged.subscribe),
            "public/* user/alice room/*"
        );
        assert_eq!(encode_patterns(&merged.publish), "room/*");
    }

    #[test]
    fn context_values_round_trip() {
        let grants = Grants {
            subscribe: vec![pattern("room/*"), pattern("*"), pattern("user/a|b")],
            publish: vec![],
        };
        let (subscribe, publish) = grants.to_context_values();
        assert_eq!(subscribe, "room/* * user/a|b");
        assert_eq!(publish, "");
        assert_eq!(grants.context_bytes(), subscribe.len() + publish.len());
        assert_eq!(
            Grants::from_context_values(Some(&subscribe), Some(&publish)).unwrap(),
            grants
        );
        assert_eq!(
            Grants::from_context_values(None, None).unwrap(),
            Grants::default()
        );
        assert!(Grants::from_context_values(Some("room/** x"), None).is_err());
    }
}
