//! Request policy (`http-api.md` §2): CORS, the Host allow-list, the Origin check, the JSON
//! media type, authentication, body framing within the limit, and the headers every reply
//! carries.

use super::Ctx;
use crate::config::Config;
use crate::relay::agents::Principal;
use crate::wire::{all, header, Reply};
use std::io::Read;
use std::net::SocketAddr;
use tiny_http::{Header, Method, Request};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
font-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
frame-ancestors 'none'; form-action 'self'";

/// The headers on every response (`http-api.md` §2.4 and `Vary: Origin`, §2.3): added to each
/// reply by `finish`, spelled into the connection-cap refusal, and given to tiny_http for the
/// answers it writes itself (a malformed or slow head, another HTTP version).
pub(super) const EVERY_RESPONSE: [(&str, &str); 6] = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Permissions-Policy",
        "camera=(), microphone=(), geolocation=(), payment=()",
    ),
    ("Content-Security-Policy", CSP),
    ("Vary", "Origin"),
];

/// Whether a proxy in front says the client spoke HTTPS (`X-Forwarded-Proto`, first value).
pub(super) fn forwarded_https(headers: &[Header]) -> bool {
    header(headers, "X-Forwarded-Proto")
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The credential a request carries (the part of `Authorization` after the scheme, which is
/// matched case-insensitively), which MCP sessions are bound to.
pub(super) fn authorization(headers: &[Header]) -> Option<&str> {
    header(headers, "Authorization").map(|v| v.split_once(' ').map_or(v, |(_, cred)| cred))
}

/// Add the headers every reply carries: security headers, `Vary: Origin`, CORS headers for
/// allow-listed origins, HSTS over TLS.
pub(super) fn finish(cfg: &Config, rq: &Request, mut reply: Reply) -> Reply {
    let h = &mut reply.headers;
    h.extend(EVERY_RESPONSE.iter().map(|&(k, v)| (k, v.to_owned())));
    if rq.secure() || forwarded_https(rq.headers()) {
        h.push((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains".into(),
        ));
    }
    let preflight = *rq.method() == Method::Options;
    if !preflight {
        if let Some(origin) = header(rq.headers(), "Origin") {
            if cors_allowed(cfg, origin) {
                h.push(("Access-Control-Allow-Origin", origin.to_owned()));
                h.push(("Access-Control-Allow-Credentials", "true".into()));
                h.push(("Access-Control-Expose-Headers", "Mcp-Session-Id".into()));
            }
        }
    }
    reply
}

pub(super) fn preflight(cfg: &Config, headers: &[Header]) -> Reply {
    let origin = header(headers, "Origin").unwrap_or_default();
    if !cors_allowed(cfg, origin) {
        return Reply::error(400, "disallowed CORS origin");
    }
    Reply::empty(200)
        .with_header("Access-Control-Allow-Origin", origin)
        .with_header("Access-Control-Allow-Credentials", "true")
        .with_header("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
        .with_header(
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type, Last-Event-ID, Mcp-Session-Id, MCP-Protocol-Version, \
         Mcp-Method, Mcp-Name, Accept, Accept-Language, Content-Language",
        )
        .with_header("Access-Control-Max-Age", "600")
}

fn cors_allowed(cfg: &Config, origin: &str) -> bool {
    let o = origin.strip_suffix('/').unwrap_or(origin);
    cfg.cors_origins
        .iter()
        .any(|a| a.strip_suffix('/').unwrap_or(a) == o)
}

/// The `Host` header, split into a lowercased hostname (IPv6 without brackets) and a port.
pub(super) struct Host {
    /// Lowercased host name (IPv6 without brackets).
    pub name: String,
    port: Option<u16>,
}

pub(super) fn host_of(headers: &[Header]) -> Result<Host, Reply> {
    let hosts = all(headers, "Host");
    match hosts.as_slice() {
        [] => Err(Reply::error(400, "invalid host header")),
        [one] => parse_host(one).ok_or_else(|| Reply::error(400, "invalid host header")),
        _ => Err(Reply::error(400, "duplicate host header")),
    }
}

fn parse_host(value: &str) -> Option<Host> {
    let v = value.trim();
    let (name, port) = if let Some(rest) = v.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (inside.to_ascii_lowercase(), port)
    } else {
        let (name, port) = match v.rsplit_once(':') {
            Some((n, p)) => (n, Some(p.parse::<u16>().ok()?)),
            None => (v, None),
        };
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
        if !ok {
            return None;
        }
        (name.to_ascii_lowercase(), port)
    };
    Some(Host { name, port })
}

pub(super) fn host_allowed(cfg: &Config, name: &str) -> bool {
    if matches!(name, "localhost" | "127.0.0.1" | "::1") {
        return true;
    }
    cfg.trusted_hosts.iter().any(|entry| {
        let e = normalise_trusted(entry);
        match e.strip_prefix("*.") {
            Some(suffix) => name.len() > suffix.len() + 1 && name.ends_with(&format!(".{suffix}")),
            None => e == name,
        }
    })
}

/// A trusted-host entry without port or brackets, lowercased.
fn normalise_trusted(entry: &str) -> String {
    let e = entry.trim();
    if e.parse::<std::net::Ipv6Addr>().is_ok() {
        return e.to_ascii_lowercase();
    }
    match parse_host(e) {
        Some(h) => h.name,
        None => e.to_ascii_lowercase(), // e.g. a wildcard entry
    }
}

pub(super) fn origin_allowed(cfg: &Config, origin: &str, host: &Host, secure: bool) -> bool {
    if cors_allowed(cfg, origin) {
        return true;
    }
    let scheme = if secure { "https" } else { "http" };
    let Some(rest) = origin
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
    else {
        return false;
    };
    let Some(o) = parse_host(rest) else {
        return false;
    };
    let default = if secure { 443 } else { 80 };
    o.name == host.name && o.port.unwrap_or(default) == host.port.unwrap_or(default)
}

/// `application/json` or `application/*+json`, parameters allowed.
pub(super) fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Who the request acts as, else the refusal.
/// Who may pass (`http-api.md` §2.5): with a token, a bearer credential (the admin token or an
/// agent's) or a live dashboard login cookie (a wrong bearer is refused even with a valid
/// cookie; only a bearer can start a login; ending one needs nothing). Without a token, loopback
/// peers that are not proxied; a bearer that is an agent's token makes them that agent.
pub(super) fn authenticate(
    ctx: &Ctx,
    headers: &[Header],
    peer: Option<&SocketAddr>,
    login_route: bool,
    method: &Method,
) -> Result<Principal, Reply> {
    let cfg = &ctx.config;
    let bearer = |one: &str| match one.split_once(' ') {
        Some((scheme, cred)) if scheme.eq_ignore_ascii_case("bearer") => Some(cred.to_owned()),
        _ => None,
    };
    match &cfg.auth_token {
        Some(_) if login_route && *method == Method::Delete => Ok(Principal::Admin),
        Some(token) => {
            let auths = all(headers, "Authorization");
            let who = match auths.as_slice() {
                [] if login_route && *method == Method::Post => None,
                [] => crate::login::cookie_value(&all(headers, "Cookie"))
                    .and_then(|c| ctx.logins.principal(c)),
                [one] => bearer(one).and_then(|cred| {
                    if token_matches(&cred, token) {
                        Some(Principal::Admin)
                    } else {
                        ctx.relay.agent_by_token(&cred)
                    }
                }),
                _ => None,
            };
            who.ok_or_else(|| Reply::error(401, "unauthorized"))
        }
        None => {
            let loopback = peer.is_some_and(|p| p.ip().is_loopback());
            let proxied = ["X-Forwarded-For", "X-Real-IP", "Forwarded"]
                .iter()
                .any(|h| header(headers, h).is_some());
            if (!loopback || proxied) && !cfg.allow_unauthenticated_network {
                return Err(Reply::error(
                    403,
                    "unauthenticated network access is disabled",
                ));
            }
            let agent = match all(headers, "Authorization").as_slice() {
                [one] if ctx.relay.has_agents() => {
                    bearer(one).and_then(|cred| ctx.relay.agent_by_token(&cred))
                }
                _ => None,
            };
            Ok(agent.unwrap_or(Principal::Admin))
        }
    }
}

/// Whether a presented credential is the token, in time that depends on neither the token nor
/// how much of it a guess gets right, its length included: both are hashed to 32 bytes (SHA-256)
/// and the digests compared in constant time. A plain comparison (`constant_time_eq` on the raw
/// bytes included) returns at once when the lengths differ, which tells a guesser the length.
fn token_matches(given: &str, token: &str) -> bool {
    use sha2::{Digest, Sha256};
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    let token: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    constant_time_eq::constant_time_eq_32(&given, &token)
}

/// Check the framing headers of a body of at most `max` bytes (`http-api.md` §2.6), reading
/// nothing.
pub(super) fn check_framing(headers: &[Header], max: usize) -> Result<(), Reply> {
    let lengths = all(headers, "Content-Length");
    let encodings = all(headers, "Transfer-Encoding");
    if lengths.len() > 1 {
        return Err(Reply::error(400, "invalid content-length"));
    }
    if !lengths.is_empty() && !encodings.is_empty() {
        return Err(Reply::error(400, "ambiguous request framing"));
    }
    if encodings.len() > 1
        || encodings
            .first()
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("chunked"))
    {
        return Err(Reply::error(400, "invalid transfer-encoding"));
    }
    if let Some(l) = lengths.first() {
        let l = l.trim();
        if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Reply::error(400, "invalid content-length"));
        }
        // More digits than usize holds is "too large", not "invalid".
        if l.parse::<usize>().map_or(true, |n| n > max) {
            return Err(Reply::error(413, "request body too large"));
        }
    }
    Ok(())
}

/// Read the body (its framing already checked) within `max` bytes: refused as soon as the limit
/// is crossed, or when the body does not arrive within the body deadline.
pub(super) fn read_body(rq: &mut Request, max: usize) -> Result<Vec<u8>, Reply> {
    let mut body = Vec::new();
    match rq.as_reader().take(max as u64 + 1).read_to_end(&mut body) {
        Ok(_) if body.len() > max => Err(Reply::error(413, "request body too large")),
        Ok(_) => Ok(body),
        Err(_) => Err(Reply::error(400, "content-length mismatch")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_themselves_whatever_the_length() {
        let token = "s3cret-token";
        assert!(token_matches(token, token));
        let long = "x".repeat(4096);
        for guess in [
            "",
            "s",
            "s3cret-toke",
            "s3cret-tokenX",
            "S3cret-token",
            &long,
        ] {
            assert!(!token_matches(guess, token), "{guess:?}");
        }
    }

    #[test]
    fn host_parsing() {
        let h = parse_host("LocalHost:8765").unwrap();
        assert_eq!((h.name.as_str(), h.port), ("localhost", Some(8765)));
        let h = parse_host("[::1]:80").unwrap();
        assert_eq!((h.name.as_str(), h.port), ("::1", Some(80)));
        assert!(parse_host("[::1").is_none());
        assert!(parse_host("a b").is_none());
        assert!(parse_host("host:99999").is_none());
        assert!(parse_host("").is_none());
    }

    #[test]
    fn media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/vnd.api+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/jsonx"));
    }
}
