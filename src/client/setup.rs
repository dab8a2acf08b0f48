//! `claude-bridge setup claude-code --channel CH... --consumer ID` (its words:
//! [`crate::cli::setup`]): make Claude Code sessions
//! wakeable. Writes two `asyncRewake` hooks running [`crate::client::wake`] (SessionStart waits for the
//! first message, Stop starts the next waiter after each turn) and the relay's MCP server entry,
//! merged into what the chosen scope already holds and idempotent (running it again replaces
//! our entries, nothing else). `--print` prints the settings JSON for `claude --settings FILE`
//! instead and writes nothing.
//!
//! A token given by `--token-file` stays in its file: the hooks pass `--token-file PATH` to
//! `wake`, and the MCP entry gets its header from `claude-bridge auth-header --token-file PATH`
//! (Claude Code's `headersHelper`), so no settings file ever holds the token.
//!
//! Where each scope writes (the project is the current directory):
//!
//! | scope | hooks | MCP server |
//! |---|---|---|
//! | `local` (default) | `.claude/settings.local.json` | `~/.claude.json` `projects[<project>].mcpServers` |
//! | `project` | `.claude/settings.json` | `.mcp.json` |
//! | `user` | `~/.claude/settings.json` | `~/.claude.json` `mcpServers` |

use crate::cli::setup::{Parsed, Scope, Setup};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// The name of our MCP server entry.
pub const SERVER_NAME: &str = "claude-bridge";
/// A hook's timeout in seconds: a waiter past it is killed and wakes nothing, so it is long.
pub const HOOK_TIMEOUT_SECONDS: u64 = 86_400;

/// Run a parsed `setup` / `auth-header`; returns the exit code (0 done, 1 failed).
pub fn run(parsed: Parsed, env: &dyn Fn(&str) -> Option<String>) -> u8 {
    let done = match parsed {
        Parsed::Help(text) => {
            print!("{text}");
            Ok(())
        }
        Parsed::AuthHeader(file) => crate::client::wake::read_token_file(&file).map(|t| {
            println!("{}", json!({"Authorization": format!("Bearer {t}")}));
        }),
        Parsed::ClaudeCode(s) => claude_code(&s, env),
    };
    match done {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Quote a word for a POSIX shell.
fn sh(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// What `setup` writes, computed from the command line (pure, for the tests).
#[derive(Debug, Clone, PartialEq)]
pub struct Entries {
    /// The `wake` command the hooks run.
    pub command: String,
    /// The hook group added to SessionStart and Stop.
    pub hook_group: Value,
    /// The MCP server entry.
    pub server: Value,
}

/// The hook command and MCP entry for `exe` (this binary, absolute) and the relay at `url`.
pub fn entries(s: &Setup, exe: &str, url: &str, token_file: Option<&Path>) -> Entries {
    let mut words = vec![sh(exe), "wake".into()];
    words.extend(s.channels.iter().map(|c| sh(c)));
    words.extend(["--consumer".into(), sh(&s.consumer)]);
    if let Some(n) = &s.self_name {
        words.extend(["--self".into(), sh(n)]);
    }
    words.extend(["--url".into(), sh(url)]);
    if let Some(f) = token_file {
        words.extend(["--token-file".into(), sh(&f.display().to_string())]);
    }
    let command = words.join(" ");
    let hook_group = json!({"hooks": [{
        "type": "command",
        "command": command,
        "asyncRewake": true,
        "timeout": HOOK_TIMEOUT_SECONDS,
    }]});
    let mut server = json!({"type": "http", "url": format!("{}/mcp", url.trim_end_matches('/'))});
    if let Some(f) = token_file {
        server["headersHelper"] = json!(format!(
            "{} auth-header --token-file {}",
            sh(exe),
            sh(&f.display().to_string())
        ));
    }
    Entries {
        command,
        hook_group,
        server,
    }
}

/// Whether a hook group is one of ours for this consumer: a `wake` command by this binary
/// naming the same `--consumer`.
fn ours(group: &Value, exe: &str, consumer: &str) -> bool {
    let needle = format!(" --consumer {} ", sh(consumer));
    group["hooks"].as_array().is_some_and(|hooks| {
        hooks.iter().any(|h| {
            h["command"].as_str().is_some_and(|c| {
                c.starts_with(&format!("{} wake ", sh(exe))) && c.contains(&needle)
            })
        })
    })
}

/// Merge our hook group into settings: in SessionStart and Stop, drop earlier groups of ours
/// for this consumer and append the new one. Everything else is left as it was.
pub fn merge_hooks(settings: &mut Map<String, Value>, e: &Entries, exe: &str, consumer: &str) {
    let hooks = settings
        .entry("hooks")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(hooks) = hooks else { return };
    for event in ["SessionStart", "Stop"] {
        let list = hooks.entry(event).or_insert_with(|| json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        if let Some(groups) = list.as_array_mut() {
            groups.retain(|g| !ours(g, exe, consumer));
            groups.push(e.hook_group.clone());
        }
    }
}

/// Merge our MCP server entry into an object holding `mcpServers`.
pub fn merge_server(holder: &mut Map<String, Value>, server: &Value) {
    let servers = holder.entry("mcpServers").or_insert_with(|| json!({}));
    if !servers.is_object() {
        *servers = json!({});
    }
    if let Some(s) = servers.as_object_mut() {
        s.insert(SERVER_NAME.into(), server.clone());
    }
}

fn claude_code(s: &Setup, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let url = s
        .url
        .clone()
        .or_else(|| env("CLAUDE_BRIDGE_URL"))
        .unwrap_or_else(|| crate::client::scripting::DEFAULT_URL.into());
    crate::client::Target::parse(&url).map_err(|e| format!("--url: {e}"))?;
    let url = url.trim_end_matches('/').to_owned();
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program's path: {e}"))?
        .display()
        .to_string();
    let token_file = match &s.token_file {
        Some(f) => {
            crate::client::wake::read_token_file(f)?;
            Some(
                std::fs::canonicalize(f)
                    .map_err(|e| format!("cannot resolve {}: {e}", f.display()))?,
            )
        }
        None => None,
    };
    let e = entries(s, &exe, &url, token_file.as_deref());
    if s.print {
        let mut settings = Map::new();
        merge_hooks(&mut settings, &e, &exe, &s.consumer);
        println!("{}", pretty(&Value::Object(settings)));
        eprintln!(
            "The relay's MCP server is not part of these settings; add it with:\n  claude mcp add-json {SERVER_NAME} {}",
            sh(&e.server.to_string())
        );
        return Ok(());
    }
    let project = std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
    let home = env("HOME")
        .map(PathBuf::from)
        .ok_or("HOME is not set: cannot find Claude Code's settings")?;
    let (hooks_file, servers_file) = match s.scope {
        Scope::Local => (
            project.join(".claude/settings.local.json"),
            home.join(".claude.json"),
        ),
        Scope::Project => (
            project.join(".claude/settings.json"),
            project.join(".mcp.json"),
        ),
        Scope::User => (
            home.join(".claude/settings.json"),
            home.join(".claude.json"),
        ),
    };
    edit(&hooks_file, |settings| {
        merge_hooks(settings, &e, &exe, &s.consumer)
    })?;
    edit(&servers_file, |holder| {
        if s.scope == Scope::Local {
            let projects = holder.entry("projects").or_insert_with(|| json!({}));
            if !projects.is_object() {
                *projects = json!({});
            }
            if let Some(p) = projects.as_object_mut() {
                let mine = p
                    .entry(project.display().to_string())
                    .or_insert_with(|| json!({}));
                if !mine.is_object() {
                    *mine = json!({});
                }
                if let Some(m) = mine.as_object_mut() {
                    merge_server(m, &e.server);
                }
            }
        } else {
            merge_server(holder, &e.server);
        }
    })?;
    println!(
        "Wrote the wake hooks to {} and the MCP server '{SERVER_NAME}' to {}.\n\
         New Claude Code sessions here wake on messages to {} (consumer {}).",
        hooks_file.display(),
        servers_file.display(),
        s.channels.join(", "),
        s.consumer
    );
    Ok(())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Read a JSON object file (absent or empty = `{}`), change it, and write it back through a
/// temporary file and a rename, so a reader never sees half a file.
fn edit(path: &Path, change: impl FnOnce(&mut Map<String, Value>)) -> Result<(), String> {
    let mut obj = match std::fs::read_to_string(path) {
        Ok(t) if t.trim().is_empty() => Map::new(),
        Ok(t) => match serde_json::from_str::<Value>(&t) {
            Ok(Value::Object(o)) => o,
            Ok(_) => return Err(format!("{} does not hold a JSON object", path.display())),
            Err(e) => return Err(format!("{} is not valid JSON: {e}", path.display())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    change(&mut obj);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut text = pretty(&Value::Object(obj));
    text.push('\n');
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::setup::parse;
    use std::ffi::OsString;

    fn setup(words: &[&str]) -> Setup {
        match parse(words.iter().map(OsString::from).collect()).unwrap() {
            Parsed::ClaudeCode(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(sh("demo:main"), "demo:main");
        assert_eq!(sh("it's here"), "'it'\\''s here'");
        assert_eq!(sh(""), "''");
    }

    #[test]
    fn merging_is_idempotent_and_keeps_the_rest() {
        let s = setup(&["claude-code", "--channel", "a b", "--consumer", "me"]);
        let e = entries(&s, "/bin/cb", "http://h:1", Some(Path::new("/t/tok")));
        assert!(e
            .command
            .contains("wake 'a b' --consumer me --url http://h:1"));
        assert!(e.command.ends_with("--token-file /t/tok"));
        assert_eq!(
            e.server["headersHelper"],
            "/bin/cb auth-header --token-file /t/tok"
        );
        let mut settings: Map<String, Value> = serde_json::from_value(json!({
            "model": "x",
            "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "echo hi"}]}]}
        }))
        .unwrap();
        merge_hooks(&mut settings, &e, "/bin/cb", "me");
        let once = settings.clone();
        merge_hooks(&mut settings, &e, "/bin/cb", "me");
        assert_eq!(settings, once);
        assert_eq!(settings["model"], "x");
        assert_eq!(settings["hooks"]["Stop"].as_array().unwrap().len(), 2);
        assert_eq!(
            settings["hooks"]["SessionStart"].as_array().unwrap().len(),
            1
        );
        // Another consumer's hooks are left alone.
        let other = entries(
            &setup(&["claude-code", "--channel", "a", "--consumer", "you"]),
            "/bin/cb",
            "http://h:1",
            None,
        );
        merge_hooks(&mut settings, &other, "/bin/cb", "you");
        assert_eq!(settings["hooks"]["Stop"].as_array().unwrap().len(), 3);
    }
}
