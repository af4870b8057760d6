//! Renders a mapping template the way `sumu-local render` does, for working on templates and
//! on the interpreter:
//!
//! `cargo run -p vtl --example render -- <template.vtl> --context ctx.json [--body body.json]`
//!
//! `ctx.json` deserializes into `vtl::RenderInput` (`context`, `stage_variables`, `params`);
//! the body file's text is `$input.body`. Prints the output, or the error with its line and
//! column and exits 1.

use std::process::ExitCode;

fn run(args: &[String]) -> Result<String, String> {
    let mut template = None;
    let mut context = None;
    let mut body = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--context" => context = args.next(),
            "--body" => body = args.next(),
            _ if template.is_none() => template = Some(arg),
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    let template =
        template.ok_or("usage: render <template.vtl> --context ctx.json [--body body.json]")?;
    let read = |path: &String| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let mut input: vtl::RenderInput = match context {
        Some(path) => serde_json::from_str(&read(path)?).map_err(|e| format!("{path}: {e}"))?,
        None => vtl::RenderInput::default(),
    };
    if let Some(path) = body {
        input.body = read(path)?;
    }
    let parsed = vtl::Template::parse(&read(template)?).map_err(|e| format!("{template}: {e}"))?;
    parsed
        .render(&input)
        .map_err(|e| format!("{template}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
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
