//! Renders a template with a JSON `RenderInput` (`{"context":…,"body":…,"stage_variables":…}`):
//! `cargo run -p vtl --example render -- template.vtl input.json`. The user-facing command
//! is `sumu-local render`; this example is for working on the interpreter itself.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [template, input] = args.as_slice() else {
        eprintln!("usage: render <template.vtl> <input.json>");
        return ExitCode::from(2);
    };
    let result = std::fs::read_to_string(template)
        .map_err(|e| format!("{template}: {e}"))
        .and_then(|source| vtl::Template::parse(&source).map_err(|e| format!("{template}: {e}")))
        .and_then(|parsed| {
            let input = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
            let input: vtl::RenderInput =
                serde_json::from_str(&input).map_err(|e| format!("input: {e}"))?;
            parsed
                .render(&input)
                .map_err(|e| format!("{template}: {e}"))
        });
    match result {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}
