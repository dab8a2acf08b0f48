//! `claude-bridge agent …`: manage agents on a db file (through the relay's own operations, so
//! a running relay on the same file follows at its watcher's next look) or over HTTP
//! (`/api/agents`, with the admin token). Exit codes: 0 done, 1 refused or unreachable, 2 usage.

use crate::cli::agents::{AgentAction, AgentCommand, HELP};
use crate::client::{self, Target};
use crate::relay::agents::Grant;
use crate::relay::{Relay, Settings};
use serde_json::{json, Value};
use std::time::Duration;

/// Run a parsed `agent` line; `env` reads the environment.
pub fn run(c: AgentCommand, env: &dyn Fn(&str) -> Option<String>) -> u8 {
    if c.action == AgentAction::Help {
        print!("{HELP}");
        return 0;
    }
    let result = match &c.url {
        Some(url) => {
            let token = c
                .token
                .clone()
                .or_else(|| env("CLAUDE_BRIDGE_AUTH_TOKEN"))
                .filter(|t| !t.trim().is_empty());
            match Target::parse(url) {
                Ok(t) => over_http(&t, token.as_deref(), &c.action),
                Err(e) => {
                    eprintln!("error: --url: {e}");
                    return 2;
                }
            }
        }
        None => {
            let db =
                c.db.clone()
                    .or_else(|| env("CLAUDE_BRIDGE_DB").map(Into::into))
                    .unwrap_or_else(|| "./claude-bridge.db".into());
            on_db(&db, &c.action)
        }
    };
    match result {
        Ok(v) => {
            print(&c.action, &v, c.json);
            0
        }
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}");
            2
        }
        Err(Failure::Refused(m)) => {
            eprintln!("error: {m}");
            1
        }
    }
}

enum Failure {
    Usage(String),
    Refused(String),
}

fn grants(list: &[String]) -> Result<Vec<Grant>, Failure> {
    let mut out = Vec::with_capacity(list.len());
    for g in list {
        out.push(
            Grant::parse(g).map_err(|e| Failure::Usage(format!("--grant {g}: {}", e.message)))?,
        );
    }
    Ok(out)
}

fn on_db(db: &std::path::Path, action: &AgentAction) -> Result<Value, Failure> {
    let (store, warnings) =
        crate::store::Store::open(db, false).map_err(|e| Failure::Refused(e.to_string()))?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let d = crate::config::Limits::default();
    let relay = Relay::new(
        store,
        Settings {
            max_message_bytes: d.max_message_bytes,
            retention_days: 0,
            audit_enabled: false,
            conformance_fixtures: false,
            default_lease_seconds: d.default_lease_seconds,
            max_lease_seconds: d.max_lease_seconds,
            default_max_attempts: d.default_max_attempts,
            presence_window: Duration::from_secs(d.presence_seconds),
            modern_era: true,
        },
    );
    let refused = |e: crate::error::Error| Failure::Refused(e.to_string());
    match action {
        AgentAction::Add {
            name,
            grants: g,
            admin,
        } => relay
            .add_agent(&json!(name), &grants(g)?, *admin)
            .map_err(refused),
        AgentAction::List => relay
            .list_agents()
            .map(|a| json!({"agents": a}))
            .map_err(refused),
        AgentAction::Grant { name, grant } => {
            let g = Grant::parse(grant)
                .map_err(|e| Failure::Usage(format!("{grant}: {}", e.message)))?;
            relay.grant_agent(name, g).map_err(refused)
        }
        AgentAction::Revoke { name } => relay.revoke_agent(name).map_err(refused),
        AgentAction::Help => Ok(Value::Null),
    }
}

fn over_http(t: &Target, token: Option<&str>, action: &AgentAction) -> Result<Value, Failure> {
    let (method, path, body) = match action {
        AgentAction::Add {
            name,
            grants: g,
            admin,
        } => {
            grants(g)?;
            (
                "POST",
                "/api/agents".to_owned(),
                Some(json!({"name": name, "grants": g, "admin": admin})),
            )
        }
        AgentAction::List => ("GET", "/api/agents".to_owned(), None),
        AgentAction::Grant { name, grant } => (
            "POST",
            format!("/api/agents/{}/grants", client::encode(name)),
            Some(json!({"grant": grant})),
        ),
        AgentAction::Revoke { name } => (
            "DELETE",
            format!("/api/agents/{}", client::encode(name)),
            None,
        ),
        AgentAction::Help => return Ok(Value::Null),
    };
    let r = client::request(
        t,
        method,
        &path,
        token,
        body.as_ref(),
        Duration::from_secs(30),
    )
    .map_err(Failure::Refused)?;
    let v = r.json();
    if r.status != 200 {
        let why = v["error"]
            .as_str()
            .map_or_else(|| format!("HTTP {}", r.status), str::to_owned);
        return Err(Failure::Refused(format!("the relay refused: {why}")));
    }
    Ok(v)
}

fn print(action: &AgentAction, v: &Value, json: bool) {
    if json {
        println!("{v}");
        return;
    }
    let list = |g: &Value| {
        g.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    match action {
        AgentAction::Add { .. } => {
            // The token alone on stdout, so `TOKEN=$(claude-bridge agent add …)` works.
            println!("{}", v["token"].as_str().unwrap_or_default());
            eprintln!(
                "agent {} added{}; grants: {}. The token is shown only now.",
                v["name"].as_str().unwrap_or_default(),
                if v["admin"] == true {
                    " as an admin"
                } else {
                    ""
                },
                list(&v["grants"])
            );
        }
        AgentAction::List => {
            for a in v["agents"].as_array().into_iter().flatten() {
                let mut flags = String::new();
                if a["admin"] == true {
                    flags.push_str(" [admin]");
                }
                if a["revoked"] == true {
                    flags.push_str(" [revoked]");
                }
                println!(
                    "{}{flags}\t{}",
                    a["name"].as_str().unwrap_or_default(),
                    list(&a["grants"])
                );
            }
        }
        AgentAction::Grant { .. } => println!(
            "{}\t{}",
            v["name"].as_str().unwrap_or_default(),
            list(&v["grants"])
        ),
        AgentAction::Revoke { name } => println!("{name} revoked"),
        AgentAction::Help => {}
    }
}
