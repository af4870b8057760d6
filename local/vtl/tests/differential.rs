//! Differential test against airspeed-ext, the Velocity engine LocalStack uses for API
//! Gateway templates. Every case in `tests/corpus/` (feature probes and the project's own
//! mapping templates) must render identically in both engines, unless the case names a
//! difference listed and justified in `tests/corpus/DIFFERENCES.md`; then our output must be
//! the `expected` text the case pins (what Velocity 1.7 / API Gateway produce), and airspeed's
//! must still differ (a stale entry fails).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use vtl::{RenderInput, Template};

#[derive(Deserialize)]
struct Case {
    /// A template outside the corpus (relative to it); default `<case>.vtl`.
    template: Option<String>,
    #[serde(default)]
    input: RenderInput,
    /// The DIFFERENCES.md entry (e.g. `D1`) explaining why airspeed renders otherwise.
    difference: Option<String>,
    /// Our output for a case with a difference.
    expected: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Output(String),
    Error(String),
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        python.exists(),
        "{} not found: scripts/test installs airspeed-ext into .venv",
        python.display()
    );
    python
}

fn airspeed_outcomes(corpus: &Path) -> BTreeMap<String, Outcome> {
    let output = Command::new(python())
        .arg(corpus.join("render_airspeed.py"))
        .arg(corpus)
        .output()
        .expect("run render_airspeed.py");
    assert!(
        output.status.success(),
        "render_airspeed.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("render_airspeed.py prints JSON")
}

fn ours(source: &str, input: &RenderInput) -> Outcome {
    match Template::parse(source).and_then(|template| template.render(input)) {
        Ok(output) => Outcome::Output(output),
        Err(error) => Outcome::Error(error.to_string()),
    }
}

#[test]
fn corpus_renders_like_airspeed_or_the_difference_is_justified() {
    let corpus = corpus_dir();
    let differences =
        std::fs::read_to_string(corpus.join("DIFFERENCES.md")).expect("DIFFERENCES.md");
    let theirs = airspeed_outcomes(&corpus);
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 40, "corpus has {} cases", names.len());

    let mut failures = Vec::new();
    let mut justified = 0;
    for name in &names {
        let case: Case = serde_json::from_str(
            &std::fs::read_to_string(corpus.join(format!("{name}.json"))).expect("case"),
        )
        .unwrap_or_else(|e| panic!("{name}.json: {e}"));
        let template = case
            .template
            .clone()
            .unwrap_or_else(|| format!("{name}.vtl"));
        let source = std::fs::read_to_string(corpus.join(&template)).expect("template");
        let ours = ours(&source, &case.input);
        let Some(theirs) = theirs.get(name) else {
            failures.push(format!("{name}: airspeed produced no result"));
            continue;
        };
        let ours = match ours {
            Outcome::Output(ours) => ours,
            Outcome::Error(message) => {
                failures.push(format!("{name}: we fail: {message}"));
                continue;
            }
        };
        match (&case.difference, theirs) {
            (None, Outcome::Output(theirs)) if *theirs == ours => {}
            (None, theirs) => failures.push(format!(
                "{name}: differs and no difference is declared\n  ours:     {ours:?}\n  airspeed: {theirs:?}"
            )),
            (Some(id), theirs) => {
                if !differences.contains(&format!("## {id}:")) {
                    failures.push(format!("{name}: difference {id} is not in DIFFERENCES.md"));
                }
                if case.expected.as_deref() != Some(ours.as_str()) {
                    failures.push(format!(
                        "{name}: ours is not the pinned expectation\n  ours:     {ours:?}\n  expected: {:?}",
                        case.expected
                    ));
                }
                if matches!(theirs, Outcome::Output(theirs) if *theirs == ours) {
                    failures.push(format!("{name}: declares {id} but both engines now agree"));
                }
                justified += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
    // Most of the corpus must agree outright; differences are the exception.
    assert!(
        justified * 3 < names.len(),
        "{justified} of {} cases differ",
        names.len()
    );
}
