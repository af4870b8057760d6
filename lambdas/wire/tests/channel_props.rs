//! Properties of channel names, pattern matching, grant coverage and the partitions a
//! publication queries (DESIGN.md § Channels). Segments come from a tiny alphabet so that
//! generated channels and patterns share prefixes often.

use proptest::prelude::*;
use sumu_wire::channels::{decode_patterns, encode_patterns};
use sumu_wire::{Channel, Grants, Pattern};

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![Just("a"), Just("b"), Just("ab"), Just("a|b")].prop_map(String::from)
}

fn channel() -> impl Strategy<Value = Channel> {
    prop::collection::vec(segment(), 1..=5).prop_map(|s| Channel::parse(&s.join("/")).unwrap())
}

fn pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        1 => Just(Pattern::All),
        3 => channel().prop_map(Pattern::Exact),
        3 => prop::collection::vec(segment(), 1..=4)
            .prop_map(|s| Pattern::Below(Channel::parse(&s.join("/")).unwrap())),
    ]
}

/// A channel that no generated grant can name: `zz` is not in the alphabet.
fn fresh_below(pattern: &Pattern) -> Channel {
    let text = match pattern {
        Pattern::All => "zz".to_string(),
        Pattern::Below(prefix) => format!("{prefix}/zz"),
        Pattern::Exact(channel) => channel.to_string(),
    };
    Channel::parse(&text).unwrap()
}

/// The rules of DESIGN.md written as one regular expression, independently of the parser.
fn reference_is_channel(text: &str) -> bool {
    let segment = r"[A-Za-z0-9_\-.:@=+|]{1,64}";
    let re = regex_lite::Regex::new(&format!("^{segment}(/{segment}){{0,4}}$")).unwrap();
    text.len() <= 256 && re.is_match(text)
}

fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("a"),
        Just("room"),
        Just("/"),
        Just("*"),
        Just("|"),
        Just(" "),
        Just("\""),
        Just("\\"),
        Just("'"),
        Just("ä"),
        Just("\u{0}"),
        Just("\n"),
        Just("{sub}"),
        Just(""),
        Just("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ];
    prop::collection::vec(pieces, 0..12).prop_map(|p| p.concat())
}

proptest! {
    /// The basis of "one Query per matching partition, never a Scan": a subscription under
    /// pattern P is found by a publication to C iff P is one of C's partitions, and P
    /// matches C exactly then.
    #[test]
    fn a_pattern_matches_exactly_the_channels_whose_partitions_list_it(
        p in pattern(), c in channel()
    ) {
        prop_assert_eq!(p.matches(&c), c.partitions().contains(&p));
    }

    #[test]
    fn partitions_are_distinct_and_as_many_as_segments_plus_one(c in channel()) {
        let partitions = c.partitions();
        let distinct: std::collections::HashSet<_> = partitions.iter().collect();
        prop_assert_eq!(distinct.len(), partitions.len());
        prop_assert_eq!(partitions.len(), c.segments().count() + 1);
    }

    /// Coverage is sound: a grant covering a pattern matches every channel the pattern does.
    #[test]
    fn a_covering_grant_matches_everything_the_covered_pattern_matches(
        grant in pattern(), wanted in pattern(), c in channel()
    ) {
        if grant.covers(&wanted) && wanted.matches(&c) {
            prop_assert!(grant.matches(&c));
        }
    }

    /// Coverage is complete: when a grant does not cover a pattern, some channel the pattern
    /// matches escapes the grant.
    #[test]
    fn a_grant_that_does_not_cover_a_pattern_misses_one_of_its_channels(
        grant in pattern(), wanted in pattern()
    ) {
        let witness = fresh_below(&wanted);
        prop_assert!(wanted.matches(&witness));
        prop_assert_eq!(grant.covers(&wanted), grant.matches(&witness));
    }

    #[test]
    fn coverage_is_reflexive_and_transitive(a in pattern(), b in pattern(), c in pattern()) {
        prop_assert!(a.covers(&a));
        if a.covers(&b) && b.covers(&c) {
            prop_assert!(a.covers(&c));
        }
    }

    #[test]
    fn patterns_print_and_parse_back(p in pattern()) {
        prop_assert_eq!(Pattern::parse(&p.to_string()), Ok(p));
    }

    #[test]
    fn context_encoding_round_trips(
        patterns in prop::collection::vec(pattern(), 0..8),
        publish in prop::collection::vec(pattern(), 0..8),
    ) {
        let grants = Grants { subscribe: patterns.clone(), publish: publish.clone() };
        let (subscribe_text, publish_text) = grants.to_context_values();
        prop_assert_eq!(grants.context_bytes(), subscribe_text.len() + publish_text.len());
        prop_assert_eq!(Grants::from_context_values(Some(&subscribe_text), Some(&publish_text)), Ok(grants));
        prop_assert_eq!(decode_patterns(&encode_patterns(&patterns)), Ok(patterns));
    }

    /// Hostile text never panics, and is a channel exactly when the reference says so.
    #[test]
    fn channel_parsing_agrees_with_the_reference(text in hostile_text()) {
        prop_assert_eq!(Channel::parse(&text).is_ok(), reference_is_channel(&text), "{:?}", text);
        match text.strip_suffix("/*") {
            _ if text == "*" => prop_assert!(Pattern::parse(&text).is_ok()),
            Some(prefix) => prop_assert_eq!(
                Pattern::parse(&text).is_ok(),
                reference_is_channel(prefix) && prefix.split('/').count() <= 4 && text.len() <= 256
            ),
            None => prop_assert_eq!(Pattern::parse(&text).is_ok(), reference_is_channel(&text)),
        }
    }
}
