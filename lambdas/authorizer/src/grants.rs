//! The channel grants of a connection, decided at `$connect` (docs/channels.md, "Grants"):
//! the deployment's static grants (with `{sub}` standing for the principal) followed by the
//! grants claim of the token, validated, de-duplicated and handed to the gateway as two
//! authorizer context strings.
//!
//! A grants claim that cannot be used entirely is not used at all: when it is not an object of
//! the documented shape, holds one invalid pattern, or would take the context over its budget,
//! the connection keeps only the static grants and one log line says why. The token is still
//! allowed: grants decide what a connection may do with channels, not whether it may connect.

use serde::Deserialize;
use serde_json::{Map, Value};
use sumu_wire::channels::{context, validate_segment};
use sumu_wire::{Grants, Pattern};

/// What `{sub}` in a static grant is replaced with: the connection's principal.
pub const PRINCIPAL_PLACEHOLDER: &str = "{sub}";

/// Most bytes the two context values may take together. API Gateway refuses an authorizer
/// result over 8 KB (policy, `principalId` and context together): the policy takes about
/// 300 bytes, so half the limit leaves room for a long principal and the context claims. The
/// whole result is then checked against [`crate::MAX_RESULT_BYTES`] (a token whose result
/// would not fit is denied).
pub const MAX_CONTEXT_BYTES: usize = 4096;

/// Longest text kept of a reason in a log line (a claim may be many kilobytes).
const MAX_REASON_CHARS: usize = 200;

/// Grants of every connection of the deployment, as configured (`{sub}` not yet replaced).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticGrants {
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
}

impl StaticGrants {
    pub fn is_empty(&self) -> bool {
        self.subscribe.is_empty() && self.publish.is_empty()
    }

    /// Why these templates cannot be used, if they cannot (see [`check_templates`] and
    /// [`StaticGrants::check_size`]).
    pub fn check(&self) -> Result<(), String> {
        check_templates(&self.subscribe)?;
        check_templates(&self.publish)?;
        self.check_size()
    }

    /// Together the templates must fit [`MAX_CONTEXT_BYTES`] whatever the principal, so a
    /// connection's static grants are never cut.
    pub fn check_size(&self) -> Result<(), String> {
        let longest = |templates: &[String]| -> usize {
            let text: usize = templates.iter().map(|t| longest_expansion(t)).sum();
            text + templates.len().saturating_sub(1)
        };
        let bytes = longest(&self.subscribe) + longest(&self.publish);
        if bytes > MAX_CONTEXT_BYTES {
            return Err(format!(
                "the static grants may take {bytes} bytes of authorizer context (at most {MAX_CONTEXT_BYTES})"
            ));
        }
        Ok(())
    }
}

/// Each template must be a valid pattern for some principal (`{sub}` replaced by a segment).
pub fn check_templates(templates: &[String]) -> Result<(), String> {
    for template in templates {
        Pattern::parse(&template.replace(PRINCIPAL_PLACEHOLDER, "x"))
            .map_err(|error| format!("static grant `{template}`: {error}"))?;
    }
    Ok(())
}

/// The longest a template can get once `{sub}` is a segment (a longer result is refused).
fn longest_expansion(template: &str) -> usize {
    let placeholders = template.matches(PRINCIPAL_PLACEHOLDER).count();
    let bound = template.len() - placeholders * PRINCIPAL_PLACEHOLDER.len()
        + placeholders * sumu_wire::channels::MAX_SEGMENT_CHARS;
    bound.min(sumu_wire::channels::MAX_CHANNEL_BYTES)
}

/// A connection's grants and what was left out on the way, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub grants: Grants,
    /// Why the grants claim was ignored (the connection keeps only the static grants).
    pub claim_ignored: Option<String>,
    /// Static grants left out for this principal (it cannot stand for `{sub}`).
    pub static_dropped: Vec<String>,
}

/// The grants of a connection of `principal` whose verified token has `claims`.
pub fn resolve(
    claims: &Map<String, Value>,
    claim_name: &str,
    fixed: &StaticGrants,
    principal: &str,
) -> Resolved {
    let (fixed, static_dropped) = expand(fixed, principal);
    let claimed = match claims.get(claim_name) {
        // Some identity providers write absent custom claims as null.
        None | Some(Value::Null) => Ok(Grants::default()),
        Some(claim) => Grants::deserialize(claim)
            .map_err(|error| shorten(format!("malformed grants claim `{claim_name}`: {error}"))),
    };
    let (grants, claim_ignored) = match claimed {
        Ok(claimed) if claimed.is_empty() => (fixed, None),
        Ok(claimed) => {
            let merged = fixed.clone().merged(claimed);
            let bytes = merged.context_bytes();
            if bytes > MAX_CONTEXT_BYTES {
                let reason = format!(
                    "grants claim `{claim_name}` too large: {bytes} bytes of authorizer context with the static grants (at most {MAX_CONTEXT_BYTES})"
                );
                (fixed, Some(reason))
            } else {
                (merged, None)
            }
        }
        Err(reason) => (fixed, Some(reason)),
    };
    Resolved {
        grants,
        claim_ignored,
        static_dropped,
    }
}

/// The static grants for `principal`, and the templates that could not be used for it.
fn expand(fixed: &StaticGrants, principal: &str) -> (Grants, Vec<String>) {
    // The principal stands for exactly one segment: `/` or `*` in it would change what the
    // grant covers (a principal `*` must not turn `user/{sub}` into `user/*`).
    let fits = validate_segment(principal).is_ok();
    let mut dropped = Vec::new();
    let mut patterns = |templates: &[String]| -> Vec<Pattern> {
        templates
            .iter()
            .filter_map(|template| {
                let uses_principal = template.contains(PRINCIPAL_PLACEHOLDER);
                let pattern = if uses_principal && !fits {
                    None
                } else {
                    Pattern::parse(&template.replace(PRINCIPAL_PLACEHOLDER, principal)).ok()
                };
                if pattern.is_none() {
                    dropped.push(template.clone());
                }
                pattern
            })
            .collect()
    };
    let grants = Grants {
        subscribe: patterns(&fixed.subscribe),
        publish: patterns(&fixed.publish),
    };
    (grants.merged(Grants::default()), dropped)
}

/// Adds the two context entries (always both, empty for no grant). They are written last, so
/// a context claim can never stand in for them (the configuration also refuses such names).
pub fn write_context(grants: &Grants, context_map: &mut Map<String, Value>) {
    let (subscribe, publish) = grants.to_context_values();
    context_map.insert(context::SUBSCRIBE.to_string(), Value::String(subscribe));
    context_map.insert(context::PUBLISH.to_string(), Value::String(publish));
}

fn shorten(reason: String) -> String {
    match reason.char_indices().nth(MAX_REASON_CHARS) {
        Some((at, _)) => format!("{}…", &reason[..at]),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sumu_wire::channels::encode_patterns;

    fn statics(subscribe: &[&str], publish: &[&str]) -> StaticGrants {
        StaticGrants {
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn listed(patterns: &[Pattern]) -> String {
        encode_patterns(patterns)
    }

    #[test]
    fn static_grants_then_the_claim_each_pattern_once() {
        let resolved = resolve(
            &claims(
                json!({"channels": {"subscribe": ["room/*", "user/alice"], "publish": ["room/*"]}}),
            ),
            "channels",
            &statics(&["public/*", "user/{sub}"], &[]),
            "alice",
        );
        assert_eq!(
            listed(&resolved.grants.subscribe),
            "public/* user/alice room/*"
        );
        assert_eq!(listed(&resolved.grants.publish), "room/*");
        assert_eq!(resolved.claim_ignored, None);
        assert!(resolved.static_dropped.is_empty());
    }

    #[test]
    fn an_absent_or_null_claim_is_no_claim() {
        for token in [json!({}), json!({"channels": null})] {
            let resolved = resolve(&claims(token), "channels", &statics(&["a"], &[]), "u");
            assert_eq!(listed(&resolved.grants.subscribe), "a");
            assert_eq!(resolved.claim_ignored, None);
        }
    }

    #[test]
    fn a_claim_that_cannot_be_used_entirely_is_not_used_at_all() {
        for claim in [
            json!("room/*"),
            json!(["room/*"]),
            json!(42),
            json!({"subscribe": "room/*"}),
            json!({"subscribe": ["room/*", "room/**"]}),
            json!({"subscribe": ["room/*"], "publish": [{"channel": "x"}]}),
            json!({"subscribe": ["room/*"], "admin": true}),
        ] {
            let resolved = resolve(
                &claims(json!({"channels": claim})),
                "channels",
                &statics(&["public/*"], &["public/*"]),
                "u",
            );
            assert_eq!(listed(&resolved.grants.subscribe), "public/*", "{claim}");
            assert_eq!(listed(&resolved.grants.publish), "public/*", "{claim}");
            let reason = resolved.claim_ignored.expect("a reason to log");
            assert!(
                reason.starts_with("malformed grants claim `channels`"),
                "{reason}"
            );
        }
    }

    #[test]
    fn an_oversized_claim_is_not_used() {
        let many: Vec<String> = (0..500).map(|i| format!("room/{i:04}")).collect();
        let resolved = resolve(
            &claims(json!({"channels": {"subscribe": many}})),
            "channels",
            &statics(&["public/*"], &[]),
            "u",
        );
        assert_eq!(listed(&resolved.grants.subscribe), "public/*");
        assert!(resolved.claim_ignored.unwrap().contains("too large"));
        // Just under the budget is kept.
        let fitting: Vec<String> = (0..400).map(|i| format!("r/{i:04}")).collect();
        let resolved = resolve(
            &claims(json!({"channels": {"subscribe": fitting}})),
            "channels",
            &StaticGrants::default(),
            "u",
        );
        assert_eq!(resolved.grants.subscribe.len(), 400);
        assert!(resolved.grants.context_bytes() <= MAX_CONTEXT_BYTES);
    }

    #[test]
    fn a_principal_that_is_not_a_segment_loses_only_the_sub_grants() {
        for principal in [
            "*",
            "a/b",
            "auth0 user",
            "x".repeat(65).as_str(),
            "ä",
            "{sub}",
        ] {
            let resolved = resolve(
                &Map::new(),
                "channels",
                &statics(&["public/*", "user/{sub}"], &["user/{sub}/*"]),
                principal,
            );
            assert_eq!(
                listed(&resolved.grants.subscribe),
                "public/*",
                "{principal}"
            );
            assert!(resolved.grants.publish.is_empty());
            assert_eq!(resolved.static_dropped, ["user/{sub}", "user/{sub}/*"]);
        }
        // Auth0 subjects are fine.
        let resolved = resolve(
            &Map::new(),
            "channels",
            &statics(&["user/{sub}"], &[]),
            "auth0|5f7c8ec7",
        );
        assert_eq!(listed(&resolved.grants.subscribe), "user/auth0|5f7c8ec7");
    }

    #[test]
    fn a_static_grant_too_long_for_this_principal_is_dropped() {
        let long_prefix = ["p".repeat(64), "p".repeat(64), "p".repeat(64)].join("/");
        let template = format!("{long_prefix}/{{sub}}");
        let fixed = statics(&[&template], &[]);
        assert!(fixed.check().is_ok());
        let short = resolve(&Map::new(), "channels", &fixed, "bob");
        assert_eq!(short.grants.subscribe.len(), 1);
        let long = resolve(&Map::new(), "channels", &fixed, &"b".repeat(64));
        assert!(long.grants.subscribe.is_empty());
        assert_eq!(long.static_dropped, [template]);
    }

    #[test]
    fn static_templates_are_checked_once_at_start() {
        assert!(statics(&["public/*", "user/{sub}", "*"], &["user/{sub}/*"])
            .check()
            .is_ok());
        for bad in ["room/**", "user/{sub", "a/b/c/d/e/{sub}", "", "room 1"] {
            let error = statics(&[bad], &[]).check().unwrap_err();
            assert!(error.contains("static grant"), "{bad}: {error}");
        }
        // 25 templates that may grow to 189 bytes each once `{sub}` is a 64-character principal.
        let too_many: Vec<String> = (10..35)
            .map(|i| format!("{r}/{r}/{i}/{{sub}}", r = "r".repeat(60)))
            .collect();
        let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
        assert!(statics(&refs, &[]).check().unwrap_err().contains("bytes"));
    }

    #[test]
    fn long_reasons_are_shortened_for_the_log() {
        let resolved = resolve(
            &claims(json!({"channels": "x".repeat(10_000)})),
            "channels",
            &StaticGrants::default(),
            "u",
        );
        assert!(resolved.claim_ignored.unwrap().chars().count() <= MAX_REASON_CHARS + 1);
    }

    #[test]
    fn the_context_always_has_both_entries() {
        let mut map = Map::new();
        map.insert("channels_subscribe".into(), json!("forged/*"));
        write_context(&Grants::default(), &mut map);
        assert_eq!(
            Value::Object(map),
            json!({"channels_subscribe": "", "channels_publish": ""})
        );
    }
}
