//! What `sumu-local serve` prints once it is ready: the URLs and resources, and instructions
//! that work as printed for the way it was started (with or without the demo back end, with
//! development tokens or the authorizer configured from the environment).

use crate::Endpoints;

/// How the emulator was started, as far as the banner's instructions depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BannerOptions {
    /// The demo back end consumes the messages queue (`--demo`).
    pub demo: bool,
    /// A development token for `alice`, or `None` when the authorizer trusts only the issuers
    /// of its environment (`--authorizer-from-env`) and would refuse one.
    pub dev_token: Option<String>,
}

pub fn render(endpoints: &Endpoints, options: &BannerOptions) -> String {
    let r = &endpoints.resources;
    let ws = &endpoints.websocket_url;
    let mgmt = &endpoints.management_url;
    let queue_use = if options.demo {
        "send route + everything published; the demo back end consumes it: start without \
         --demo (scripts/dev: SUMU_LOCAL_DEMO=false) to read it yourself"
    } else {
        "send route + everything published; read from here"
    };
    let demo_note = match (options.demo, &options.dev_token) {
        (_, None) => "needs development tokens, which --authorizer-from-env refuses",
        (true, Some(_)) => "sign in as anyone, in two windows",
        (false, Some(_)) => {
            "the demo back end is off (no --demo; scripts/dev: SUMU_LOCAL_DEMO=false): \
             sign-in works, chat gets no answer"
        }
    };
    let try_it = match &options.dev_token {
        Some(token) => format!(
            "  Try it (token for `alice`, valid 1 h; more with `sumu-local token --sub bob`):\n    \
             websocat '{ws}?authorization={token}'\n    \
             then type: {{\"action\":\"ping\"}}\n"
        ),
        None => format!(
            "  Tokens: only the issuers configured in the environment (--authorizer-from-env:\n  \
             JWT_ISSUERS, or JWT_ISSUER/JWT_JWKS_URI/JWT_AUDIENCES) are trusted; development tokens\n  \
             (`sumu-local token`, the demo page) are refused. Connect with a token of yours:\n    \
             websocat '{ws}?authorization=<your JWT>'\n    \
             then type: {{\"action\":\"ping\"}}\n"
        ),
    };
    format!(
        "sumu-local is ready.\n\
         \n  WebSocket API        {ws}?authorization=<JWT>\
         \n  Management API       {mgmt}/@connections/{{connectionId}}   (endpoint_url = {mgmt})\
         \n  Dev JWKS             {jwks}\
         \n  Demo page            {demo}   ({demo_note})\
         \n  Connections table    {table}\
         \n  Subscriptions table  {subscriptions}   (channels: a back end may subscribe a connection here)\
         \n  Messages topic       {mtopic}   (publish route)\
         \n  Messages queue       {mqueue}   ({queue_use})\
         \n  Notifications topic  {ntopic}   (write notification requests here …)\
         \n  Notifications queue  {nqueue}   (… or here)\
         \n\n{try_it}",
        jwks = endpoints.jwks_url,
        demo = endpoints.demo_url,
        table = r.connections_table,
        subscriptions = r.subscriptions_table,
        mtopic = r.messages_topic_arn,
        mqueue = r.messages_queue_url,
        ntopic = r.notifications_topic_arn,
        nqueue = r.notifications_queue_url,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Resources;

    fn endpoints() -> Endpoints {
        Endpoints {
            address: "127.0.0.1:8080".parse().unwrap(),
            websocket_url: "ws://127.0.0.1:8080/dev".into(),
            management_url: "http://127.0.0.1:8080/dev".into(),
            jwks_url: "http://127.0.0.1:8080/.well-known/jwks.json".into(),
            demo_url: "http://127.0.0.1:8080/demo/?stage=dev".into(),
            resources: Resources {
                connections_table: "t".into(),
                connections_stream_arn: None,
                subscriptions_table: "s".into(),
                subscriptions_stream_arn: None,
                history_table: "h".into(),
                members_table: "m".into(),
                messages_topic_arn: "arn:mt".into(),
                messages_queue_url: "http://q/messages".into(),
                messages_dlq_url: "http://q/messages-dlq".into(),
                notifications_topic_arn: "arn:nt".into(),
                notifications_queue_url: "http://q/notifications".into(),
                notifications_dlq_url: "http://q/notifications-dlq".into(),
            },
        }
    }

    fn line<'a>(banner: &'a str, label: &str) -> &'a str {
        banner
            .lines()
            .find(|line| line.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in\n{banner}"))
    }

    #[test]
    fn with_the_demo_on_the_messages_queue_is_not_offered_for_reading() {
        let banner = render(
            &endpoints(),
            &BannerOptions {
                demo: true,
                dev_token: Some("TOKEN".into()),
            },
        );
        let queue = line(&banner, "Messages queue");
        assert!(!queue.contains("read from here"), "{queue}");
        assert!(queue.contains("the demo back end consumes it"), "{queue}");
        assert!(queue.contains("SUMU_LOCAL_DEMO=false"), "{queue}");
        assert!(banner.contains("websocat 'ws://127.0.0.1:8080/dev?authorization=TOKEN'"));
    }

    #[test]
    fn with_the_demo_off_the_messages_queue_is_yours_to_read() {
        let banner = render(
            &endpoints(),
            &BannerOptions {
                demo: false,
                dev_token: Some("TOKEN".into()),
            },
        );
        assert!(line(&banner, "Messages queue").contains("read from here"));
        // True for `sumu-local serve` and for `SUMU_LOCAL_DEMO=false scripts/dev` alike: it
        // says what is off and why, not that scripts/dev would turn it on.
        let demo = line(&banner, "Demo page");
        assert!(demo.contains("the demo back end is off"), "{demo}");
        assert!(demo.contains("SUMU_LOCAL_DEMO=false"), "{demo}");
        assert!(!demo.contains("scripts/dev does"), "{demo}");
    }

    #[test]
    fn with_the_authorizer_from_the_environment_no_development_token_is_offered() {
        let banner = render(
            &endpoints(),
            &BannerOptions {
                demo: true,
                dev_token: None,
            },
        );
        assert!(!banner.contains("token for `alice`"), "{banner}");
        assert!(banner.contains("development tokens"), "{banner}");
        assert!(banner.contains("are refused"), "{banner}");
        assert!(banner.contains("authorization=<your JWT>"), "{banner}");
        assert!(line(&banner, "Demo page").contains("--authorizer-from-env refuses"));
    }
}
