//! Tokens for the test users, from a command the user supplies (their identity provider's CLI,
//! `sumu-local token --sub {user}`, …): run once per user, the JWT read from its stdout.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;

/// The placeholder the command must contain; replaced by the test user's name.
pub const USER_PLACEHOLDER: &str = "{user}";

/// How long one run of the token command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

pub struct TokenCommand {
    /// What messages call the command ("the token command", "the foreign token command").
    name: &'static str,
    template: String,
    cache: Mutex<HashMap<String, String>>,
}

impl TokenCommand {
    /// A shell command line with `{user}` where the user's name goes (`--token-command`).
    pub fn new(template: &str) -> Result<TokenCommand, String> {
        TokenCommand::named("the token command", template)
    }

    /// The same, called `name` in messages (`--foreign-token-command` is a second one).
    pub fn named(name: &'static str, template: &str) -> Result<TokenCommand, String> {
        if !template.contains(USER_PLACEHOLDER) {
            return Err(format!(
                "{name} {template:?} has no {USER_PLACEHOLDER}: the suite runs it once per test user, e.g. 'my-idp-token --subject {USER_PLACEHOLDER}'"
            ));
        }
        Ok(TokenCommand {
            name,
            template: template.to_string(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The user's token, running the command the first time it is asked for. User names are
    /// the suite's own (`[a-z0-9-]`), so putting one in a shell command line needs no quoting.
    pub async fn token(&self, user: &str) -> Result<String, String> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.get(user) {
            return Ok(token.clone());
        }
        let name = self.name;
        let command_line = self.template.replace(USER_PLACEHOLDER, user);
        let run = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command_line)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(COMMAND_TIMEOUT, run)
            .await
            .map_err(|_| {
                format!("{name} `{command_line}` did not finish within {COMMAND_TIMEOUT:?}")
            })?
            .map_err(|error| format!("{name} `{command_line}` could not run: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "{name} `{command_line}` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if token.is_empty() || token.split('.').count() != 3 || token.contains(char::is_whitespace)
        {
            return Err(format!(
                "{name} `{command_line}` printed {:?}, not one JWT (three dot-separated parts) on stdout",
                shorten(&token)
            ));
        }
        cache.insert(user.to_string(), token.clone());
        Ok(token)
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 80 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(80).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_must_name_the_user() {
        let error = TokenCommand::new("my-idp-token").err().expect("refused");
        assert!(
            error.starts_with("the token command ") && error.contains("{user}"),
            "{error}"
        );
        let error = TokenCommand::named("the foreign token command", "my-idp-token")
            .err()
            .expect("refused");
        assert!(error.starts_with("the foreign token command "), "{error}");
    }

    #[tokio::test]
    async fn the_token_is_stdout_trimmed_and_asked_once() {
        let marker = std::env::temp_dir().join(format!(
            "conformance-token-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let command = TokenCommand::new(&format!(
            "echo run >> {marker}; echo ' h.{{user}}.s '",
            marker = marker.display()
        ))
        .expect("command");
        assert_eq!(command.token("u1").await.expect("token"), "h.u1.s");
        assert_eq!(command.token("u1").await.expect("token"), "h.u1.s");
        let runs = std::fs::read_to_string(&marker).expect("marker");
        let _ = std::fs::remove_file(&marker);
        assert_eq!(runs.lines().count(), 1, "one run per user");
    }

    #[tokio::test]
    async fn a_failing_command_shows_its_stderr() {
        let command =
            TokenCommand::new("echo 'no session for {user}' >&2; exit 3").expect("command");
        let error = command.token("u1").await.expect_err("fails");
        assert!(error.contains("no session for u1"), "{error}");
    }

    #[tokio::test]
    async fn output_that_is_not_a_jwt_is_refused() {
        let command = TokenCommand::new("echo 'Login required for {user}'").expect("command");
        let error = command.token("u1").await.expect_err("not a JWT");
        assert!(error.contains("not one JWT"), "{error}");
    }
}
