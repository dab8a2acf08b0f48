//! The `claude-bridge` binary: parse, resolve, run, print one error line and pick the exit code
//! (0 normal, 1 runtime failure, 2 usage or configuration error).

use claude_bridge::client::{scripting, setup, wake};
use claude_bridge::{app, cli, config};
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
        Ok(cli::Command::Tui { url, sender, token }) => return tui(url, sender, token),
        Ok(cli::Command::Agent(c)) => {
            return ExitCode::from(claude_bridge::client::agents::run(*c, &|k| {
                std::env::var(k).ok()
            }));
        }
        Ok(cli::Command::Wake(parsed)) => {
            let env = |k: &str| std::env::var(k).ok();
            return ExitCode::from(match *parsed {
                cli::wake::Parsed::Help => {
                    print!("{}", cli::wake::HELP);
                    0
                }
                cli::wake::Parsed::Run(w) => wake::run(w, &env),
            });
        }
        Ok(cli::Command::Setup(parsed)) => {
            return ExitCode::from(setup::run(*parsed, &|k| std::env::var(k).ok()));
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("Run 'claude-bridge --help' for usage.");
            // `wake` runs as a hook, where exit 2 would hand this text to the model as a
            // message (and wake it again after every turn): its usage errors exit 1.
            let hook = std::env::args_os().nth(1).is_some_and(|a| a == "wake");
            return ExitCode::from(if hook { 1 } else { 2 });
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

/// `claude-bridge tui`: the terminal UI when built with the `tui` feature.
#[cfg(feature = "tui")]
fn tui(url: Option<String>, sender: Option<String>, token: Option<String>) -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let url = url
        .or_else(|| env("CLAUDE_BRIDGE_URL"))
        .unwrap_or_else(|| scripting::DEFAULT_URL.into());
    let token = token
        .or_else(|| env("CLAUDE_BRIDGE_AUTH_TOKEN"))
        .filter(|t| !t.trim().is_empty());
    let sender = sender.unwrap_or_else(|| "tui".into());
    match claude_bridge::client::tui::run(&url, &sender, token) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `claude-bridge tui` in a build without the `tui` feature.
#[cfg(not(feature = "tui"))]
fn tui(_: Option<String>, _: Option<String>, _: Option<String>) -> ExitCode {
    eprintln!(
        "error: this claude-bridge was built without the terminal UI; \
         install it with: cargo install --path . --features tui"
    );
    ExitCode::from(2)
}
