//! `sumu-local serve --presence-destination`: the three values are offered, others refused
//! before anything starts.

use std::process::Command;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sumu-local"))
}

#[test]
fn an_unknown_presence_destination_is_refused_with_the_allowed_values() {
    let output = binary()
        .args(["serve", "--presence-destination", "kafka", "--port", "0"])
        .output()
        .expect("run sumu-local");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--presence-destination"), "{stderr}");
    assert!(stderr.contains("expected topic, queue or none"), "{stderr}");
}

#[test]
fn help_documents_the_presence_destination() {
    let output = binary()
        .args(["serve", "--help"])
        .output()
        .expect("run sumu-local");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("--presence-destination"), "{stdout}");
    assert!(stdout.contains("[default: topic]"), "{stdout}");
}
