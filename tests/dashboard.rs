//! The web dashboard in real headless Chromium (Debian's package, driven by npm
//! `playwright-core`): `tests/clients/dashboard.mjs` loads the page from the real binary, watches
//! a message arrive live, sends JSON from the composer and reads it pretty-printed in the
//! inspector, clears a channel behind a confirmation, signs in with a token (a wrong one is
//! refused), and checks the phone-width layout. Screenshots go to `target/test-artifacts/`.

use crate::support::{playwright, Relay};
use std::path::Path;
use std::process::Command;

/// Run `script` (under `tests/clients/`) against the relay with these arguments after the
/// artifacts directory; returns its findings (panics unless they say ok).
fn drive_script(script: &str, r: &Relay, artifacts: &str, args: &[&str]) -> serde_json::Value {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join(artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = Command::new("node")
        .arg(path)
        .arg(playwright())
        .arg(format!("http://{}", r.addr))
        .arg(&artifacts)
        .args(args)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "{script}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        v["ok"],
        true,
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

fn drive(r: &Relay, token: Option<&str>) -> serde_json::Value {
    let artifacts = match token {
        Some(_) => "target/test-artifacts/with-token",
        None => "target/test-artifacts",
    };
    drive_at(&format!("http://{}", r.addr), token, artifacts, &[])
}

/// Run the browser script against `base`; screenshots go to `artifacts` (under the crate).
fn drive_at(
    base: &str,
    token: Option<&str>,
    artifacts: &str,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let pw = playwright();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join(artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/dashboard.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .arg(&pw)
        .arg(base)
        .arg(&artifacts)
        .envs(env.iter().copied());
    if let Some(t) = token {
        cmd.arg(t);
    }
    let out = cmd.output().expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "browser script: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        v["ok"],
        true,
        "{v}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let r = Relay::start(&[], &[]);
    let v = drive(&r, None);
    assert!(v["live_ms"].as_u64().unwrap() < 1000);
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-artifacts/dashboard-phone.png")
        .exists());
}

#[test]
fn the_dashboard_signs_in_with_the_token_and_refuses_a_wrong_one() {
    let r = Relay::start(&["--auth-token", "dash-secret-token"], &[]);
    drive(&r, Some("dash-secret-token"));
}

/// Over HTTPS (feature `tls`), signed in: the live stream, the composer and the `Secure`
/// session cookie all work in the browser.
#[cfg(feature = "tls")]
#[test]
fn the_dashboard_works_over_https() {
    let (_r, _dir, port, ca) = crate::tls::https_relay(&["--auth-token", "dash-tls-token"]);
    let v = drive_at(
        &format!("https://localhost:{port}"),
        Some("dash-tls-token"),
        "target/test-artifacts/https",
        &[("NODE_EXTRA_CA_CERTS", &ca)],
    );
    assert!(v["live_ms"].as_u64().unwrap() < 1000, "{v}");
}

/// Issue 18: a new channel and a new agent appear within a second of the agent's first
/// message, without a reload or a poll; the roster panel shows its card and renders at phone
/// width; a revoked agent leaves it.
#[test]
fn the_dashboard_is_live_without_polling_and_shows_the_roster() {
    let r = Relay::start(&["--auth-token", "dash-live-token"], &[]);
    let v = drive_script(
        "dashboard_live.mjs",
        &r,
        "target/test-artifacts/live",
        &["dash-live-token"],
    );
    assert!(v["channel_ms"].as_u64().unwrap() < 1000, "{v}");
    assert!(v["agent_ms"].as_u64().unwrap() < 1000, "{v}");
    assert_eq!(v["state_reads"], 1);
}

#[test]
fn no_dashboard_serves_no_page_but_the_api_stays() {
    let r = Relay::start(&["--no-dashboard"], &[]);
    assert_eq!(r.get("/").status, 404);
    assert_eq!(r.get("/app.js").status, 404);
    assert_eq!(r.get("/api/state").status, 200);
    let on = Relay::start(&[], &[]);
    let page = on.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/app.js"));
    assert_eq!(on.get("/app.js").status, 200);
    // The contract's CSP (http-api.md 2.4); the page needs none of its inline allowance.
    let csp = page.header("Content-Security-Policy").unwrap().to_owned();
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self';"),
        "{csp}"
    );
    let html = page.text();
    assert!(!html.contains("style=") && !html.contains("<style"));
    for handler in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " oninput=",
        " onkeydown=",
    ] {
        assert!(!html.contains(handler), "{handler}");
    }
    assert!(html.matches("<script").count() == html.matches("<script src=").count());
}
