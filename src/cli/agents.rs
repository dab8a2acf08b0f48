//! `claude-bridge agent add|list|grant|revoke`: argv → [`AgentCommand`], syntax only. They run
//! in [`crate::client::agents`], on the db given by `--db` (relay running or not) or over HTTP
//! with `--url` and the admin token.

use super::UsageError;
use std::ffi::OsString;
use std::path::PathBuf;

/// What `agent` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    /// `agent --help`.
    Help,
    /// `agent add NAME [--grant PATTERN=MODE]... [--admin]`.
    Add {
        /// The agent's name.
        name: String,
        /// `--grant`, repeatable.
        grants: Vec<String>,
        /// `--admin`.
        admin: bool,
    },
    /// `agent list`.
    List,
    /// `agent grant NAME PATTERN=MODE`.
    Grant {
        /// The agent.
        name: String,
        /// `PATTERN=MODE`.
        grant: String,
    },
    /// `agent revoke NAME`.
    Revoke {
        /// The agent.
        name: String,
    },
}

/// A parsed `agent` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    /// What to do.
    pub action: AgentAction,
    /// `--db`.
    pub db: Option<PathBuf>,
    /// `--url`: over HTTP instead of the db.
    pub url: Option<String>,
    /// `--token` (the admin token, for `--url`).
    pub token: Option<String>,
    /// `--json`.
    pub json: bool,
}

/// `agent --help`.
pub const HELP: &str = "\
claude-bridge agent: agents with their own tokens and channel grants.

USAGE:
    claude-bridge agent add NAME [--grant PATTERN=MODE]... [--admin]
                                     add an agent; prints its token once (only a hash is kept)
    claude-bridge agent list         list agents and their grants
    claude-bridge agent grant NAME PATTERN=MODE
                                     add a grant (or change its mode)
    claude-bridge agent revoke NAME  refuse its token from now on; its streams end

PATTERN is a channel name or a prefix ending in * (proj:*, *); MODE is read, write or admin
(admin includes both and allows clear). An agent sends only as itself.

WHERE:
    --db PATH      the relay's SQLite file, running or not [env: CLAUDE_BRIDGE_DB]
                   [default: ./claude-bridge.db]
    --url URL      a running relay instead, with the admin token (--token or
                   CLAUDE_BRIDGE_AUTH_TOKEN)
    --json         print the relay's JSON
";

/// Parse the words after `agent`.
pub fn parse(args: Vec<OsString>) -> Result<AgentCommand, UsageError> {
    use lexopt::prelude::*;
    let mut words = Vec::new();
    let (mut grants, mut admin, mut json) = (Vec::new(), false, false);
    let (mut db, mut url, mut token) = (None, None, None);
    let mut p = lexopt::Parser::from_args(args);
    let usage = |m: String| UsageError(format!("agent: {m}"));
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => {
                return Ok(AgentCommand {
                    action: AgentAction::Help,
                    db,
                    url,
                    token,
                    json,
                })
            }
            Long("grant") => grants.push(super::string(&mut p, "--grant")?),
            Long("admin") => admin = true,
            Long("json") => json = true,
            Long("db") => db = Some(p.value()?.into()),
            Long("url") => url = Some(super::string(&mut p, "--url")?),
            Long("token") => token = Some(super::string(&mut p, "--token")?),
            Value(v) => words.push(
                v.into_string()
                    .map_err(|_| usage("an argument is not valid UTF-8".into()))?,
            ),
            other => return Err(usage(other.unexpected().to_string())),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let only = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(usage(format!("{what} only go with add")))
        }
    };
    let action = match words.as_slice() {
        ["add", name] => AgentAction::Add {
            name: (*name).to_owned(),
            grants: std::mem::take(&mut grants),
            admin,
        },
        ["list"] => AgentAction::List,
        ["grant", name, grant] => AgentAction::Grant {
            name: (*name).to_owned(),
            grant: (*grant).to_owned(),
        },
        ["revoke", name] => AgentAction::Revoke {
            name: (*name).to_owned(),
        },
        [] => {
            return Err(usage(
                "say add, list, grant or revoke (see agent --help)".into(),
            ))
        }
        _ => {
            return Err(usage(format!(
                "cannot understand '{}' (see agent --help)",
                words.join(" ")
            )))
        }
    };
    only(
        grants.is_empty() && (!admin || matches!(action, AgentAction::Add { .. })),
        "--grant and --admin",
    )?;
    if db.is_some() && url.is_some() {
        return Err(usage("give --db or --url, not both".into()));
    }
    Ok(AgentCommand {
        action,
        db,
        url,
        token,
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &[&str]) -> Result<AgentCommand, UsageError> {
        parse(a.iter().map(OsString::from).collect())
    }

    #[test]
    fn words_and_flags() {
        let c = p(&[
            "add",
            "a",
            "--grant",
            "x:*=read",
            "--grant=y=write",
            "--admin",
            "--db",
            "f.db",
        ])
        .unwrap();
        assert_eq!(
            c.action,
            AgentAction::Add {
                name: "a".into(),
                grants: vec!["x:*=read".into(), "y=write".into()],
                admin: true
            }
        );
        assert_eq!(c.db, Some(PathBuf::from("f.db")));
        assert_eq!(p(&["list", "--json"]).unwrap().action, AgentAction::List);
        assert!(p(&["list", "--grant", "a=read"]).is_err());
        assert!(p(&["grant", "a"]).is_err());
        assert!(p(&[]).is_err());
        assert!(p(&["revoke", "a", "--db", "x", "--url", "http://h:1"]).is_err());
        assert_eq!(p(&["--help"]).unwrap().action, AgentAction::Help);
    }
}
