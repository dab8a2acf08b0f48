//! The `claude-bridge` binary: parse, resolve, run, print one error line and pick the exit code
//! (0 normal, 1 runtime failure, 2 usage or configuration error).

use claude_bridge::{app, cli, config, scripting};
use std::process::ExitCode;

fn main() -> ExitCode {
    let raw = match cli::parse(std::env::args_os().skip(1)) {
        Ok(cli::Command::Help) => {
            print!("{}", cli::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Version) => {
            println!("claude-bridge {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Run(raw)) => *raw,
        Ok(cli::Command::Script(script)) => {
            return ExitCode::from(scripting::run(*script, &|k| std::env::var(k).ok()));
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("Run 'claude-bridge --help' for usage.");
            return ExitCode::from(2);
        }
    };
    let config = match config::resolve(raw, &|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    match app::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
