//! The route table: every path the relay serves, parsed once into a [`Route`] that carries its
//! rule (the methods it takes, whether it needs authentication and a JSON body, the label it is
//! counted under in `/metrics`) and is dispatched to its handler. The pipeline in
//! `http::pipeline` asks the rule; nothing else matches on paths.

use super::{policy, Ctx};
use crate::api;
use crate::error::Error;
use crate::relay::agents::{Mode, Principal};
use crate::wire::{all, header, Reply, Req};
use std::sync::Arc;
use tiny_http::Method;

/// A route: what a request's path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'p> {
    /// `/status`: public health.
    Status,
    /// `/api/state`.
    State,
    /// `/api/messages`: the read listing.
    Messages,
    /// `/api/messages/{id}` (the raw, still percent-encoded rest of the path).
    Message(&'p str),
    /// `/api/send`.
    Send,
    /// `/api/clear`.
    Clear,
    /// `/api/audit`.
    Audit,
    /// `/api/wait`: long-poll.
    Wait,
    /// `/api/ready`: readiness.
    Ready,
    /// `/api/ack`.
    Ack,
    /// `/api/session`: a dashboard login (the token traded for a cookie).
    Login,
    /// `/events/channel/{channel}` (raw rest of the path): live channel events.
    Events(&'p str),
    /// `/sse`: legacy MCP event stream.
    Sse,
    /// `/messages/…`: legacy MCP message post.
    SseMessage,
    /// `/mcp`: Streamable HTTP.
    Mcp,
    /// `/metrics`.
    Metrics,
    /// `/api/agents`: the roster (GET), adding an agent (POST).
    Agents,
    /// `/api/agents/{name}` (DELETE: revoke) and `/api/agents/{name}/grants` (POST: grant); the
    /// raw rest of the path.
    Agent(&'p str),
    /// `/api/card`: set a roster card.
    Card,
    /// `/events/relay`: the relay-wide event stream.
    RelayEvents,
    /// Any other path under `/api/`: protected, then 404.
    ApiOther,
    /// Any other path: a dashboard asset or 404; `protected` under `/events/`.
    Other {
        /// Whether the path needs authentication (`http-api.md` §2.5).
        protected: bool,
    },
}

/// What a route asks of a request.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The methods answered (HEAD goes with GET), `None` when the handler decides.
    pub methods: Option<&'static [Method]>,
    /// The `Allow` header of a 405.
    pub allow: &'static str,
    /// Behind authentication (`http-api.md` §2.5).
    pub protected: bool,
    /// A POST, PUT or PATCH must say `application/json` (§2.2).
    pub json_body: bool,
    /// The bounded label requests are counted under in `/metrics`.
    pub label: &'static str,
    /// What the caller must be allowed (checked before the handler runs; always passes for
    /// the admin, so a relay without agents answers as before).
    pub need: Need,
}

/// What a route needs of the caller's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing beyond authentication (listings filter what they show; MCP checks each tool).
    Any,
    /// `mode` on the channel named by the `channel` query parameter.
    Query(Mode),
    /// `mode` on the channel named by the JSON body's `channel`.
    Body(Mode),
    /// `mode` on the channel named by the path.
    Path(Mode),
    /// A relay admin (the admin token or an admin agent).
    Admin,
    /// Reading for anyone, changing for a relay admin.
    AdminToChange,
}

const GET: &[Method] = &[Method::Get, Method::Head];
const POST: &[Method] = &[Method::Post];

const fn rule(
    methods: Option<&'static [Method]>,
    allow: &'static str,
    protected: bool,
    json_body: bool,
    label: &'static str,
) -> Rule {
    Rule {
        methods,
        allow,
        protected,
        json_body,
        label,
        need: Need::Any,
    }
}

impl Rule {
    const fn needs(mut self, need: Need) -> Rule {
        self.need = need;
        self
    }
}

impl<'p> Route<'p> {
    /// The route of a path (without its query).
    pub fn parse(path: &'p str) -> Route<'p> {
        match path {
            "/status" => Route::Status,
            "/api/state" => Route::State,
            "/api/messages" => Route::Messages,
            "/api/send" => Route::Send,
            "/api/clear" => Route::Clear,
            "/api/audit" => Route::Audit,
            "/api/wait" => Route::Wait,
            "/api/ready" => Route::Ready,
            "/api/ack" => Route::Ack,
            "/api/session" => Route::Login,
            "/sse" => Route::Sse,
            "/mcp" => Route::Mcp,
            "/metrics" => Route::Metrics,
            "/api/agents" => Route::Agents,
            "/api/card" => Route::Card,
            "/events/relay" => Route::RelayEvents,
            p => {
                if let Some(id) = p.strip_prefix("/api/messages/") {
                    Route::Message(id)
                } else if let Some(rest) = p.strip_prefix("/api/agents/") {
                    Route::Agent(rest)
                } else if let Some(channel) = p.strip_prefix("/events/channel/") {
                    Route::Events(channel)
                } else if p.starts_with("/messages/") {
                    Route::SseMessage
                } else if p.starts_with("/api/") {
                    Route::ApiOther
                } else {
                    Route::Other {
                        protected: p.starts_with("/events/"),
                    }
                }
            }
        }
    }

    /// The route's rule.
    pub fn rule(&self) -> Rule {
        const ANY: &str = "";
        match self {
            Route::Status => rule(Some(GET), "GET, HEAD", false, false, "/status"),
            // Lists only the channels the caller may read.
            Route::State => rule(Some(GET), "GET, HEAD", true, false, "/api/state"),
            // POST gets its own 405 with a hint (`http-api.md` §3.3).
            Route::Messages => {
                rule(None, "GET, HEAD", true, false, "/api/messages").needs(Need::Query(Mode::Read))
            }
            // A malformed id is 404 whatever the method; so is a message the caller may not
            // read (its channel is not named by the request, so nothing is revealed).
            Route::Message(_) => rule(None, "GET, HEAD", true, false, "/api/messages/{id}"),
            Route::Send => {
                rule(Some(POST), "POST", true, true, "/api/send").needs(Need::Body(Mode::Write))
            }
            Route::Clear => {
                rule(Some(POST), "POST", true, true, "/api/clear").needs(Need::Body(Mode::Admin))
            }
            Route::Audit => {
                rule(Some(GET), "GET, HEAD", true, false, "/api/audit").needs(Need::Admin)
            }
            Route::Wait => rule(Some(GET), "GET, HEAD", true, false, "/api/wait")
                .needs(Need::Query(Mode::Read)),
            Route::Ready => rule(Some(GET), "GET, HEAD", true, false, "/api/ready"),
            Route::Ack => {
                rule(Some(POST), "POST", true, true, "/api/ack").needs(Need::Body(Mode::Read))
            }
            Route::Agents => rule(
                Some(&[Method::Get, Method::Head, Method::Post]),
                "GET, HEAD, POST",
                true,
                true,
                "/api/agents",
            )
            .needs(Need::AdminToChange),
            Route::Agent(_) => rule(
                Some(&[Method::Post, Method::Delete]),
                "POST, DELETE",
                true,
                true,
                "/api/agents/{name}",
            )
            .needs(Need::Admin),
            // An agent sets its own card; the admin names whose.
            Route::Card => rule(Some(POST), "POST", true, true, "/api/card"),
            // Carries only what the caller may read.
            Route::RelayEvents => rule(Some(GET), "GET, HEAD", true, false, "/events/relay"),
            Route::Login => rule(
                Some(&[Method::Get, Method::Head, Method::Post, Method::Delete]),
                "GET, POST, DELETE",
                true,
                false,
                "/api/session",
            ),
            Route::Events(_) => rule(
                Some(GET),
                "GET, HEAD",
                true,
                false,
                "/events/channel/{channel}",
            )
            .needs(Need::Path(Mode::Read)),
            Route::Sse => rule(Some(GET), "GET, HEAD", true, false, "/sse"),
            Route::SseMessage => rule(Some(POST), "POST", true, true, "/messages/"),
            // The transport answers its methods (they depend on stateless mode).
            Route::Mcp => rule(None, ANY, true, true, "/mcp"),
            Route::Metrics => rule(Some(GET), "GET, HEAD", true, false, "/metrics"),
            Route::ApiOther => rule(None, ANY, true, false, "/api/other"),
            Route::Other { protected } => rule(None, ANY, *protected, false, "/other"),
        }
    }
}

/// Answer a request that passed the pipeline: the route's method check, then its handler.
pub fn dispatch(ctx: &Ctx, route: Route<'_>, req: &Req<'_>, secure: bool) -> Reply {
    let rule = route.rule();
    if let Some(methods) = rule.methods {
        if !methods.contains(req.method) {
            return Reply::method_not_allowed(rule.allow);
        }
    }
    let relay = &ctx.relay;
    if let Err(e) = authorize(relay, &route, rule.need, req) {
        return api::handled(Err(e));
    }
    let headers = req.headers;
    match route {
        Route::Status => api::status(),
        Route::State => api::handled(api::state(relay, &ctx.events, &req.who)),
        Route::Messages if *req.method == Method::Post => api::messages_post(),
        Route::Messages if !GET.contains(req.method) => Reply::method_not_allowed(rule.allow),
        Route::Messages => api::handled(api::messages(relay, req)),
        Route::Message(id) if id.is_empty() || id.contains('/') => api::not_found(),
        Route::Message(_) if !GET.contains(req.method) => Reply::method_not_allowed(rule.allow),
        Route::Message(id) => api::handled(api::message(relay, id, &req.who)),
        Route::Send => api::handled(api::send(relay, req)),
        Route::Clear => api::handled(api::clear(relay, req)),
        Route::Audit => api::handled(api::audit(relay, req)),
        Route::Wait => api::handled(api::wait(relay, req)),
        Route::Ready => api::ready(relay),
        Route::Ack => api::handled(api::ack(relay, req)),
        Route::Login => ctx.logins.serve(
            req.method,
            headers,
            ctx.config.auth_token.is_some(),
            secure || policy::forwarded_https(headers),
            &req.who,
        ),
        Route::Events(channel) => {
            let cursor = header(headers, "Last-Event-ID")
                .map(str::to_owned)
                .or_else(|| req.query_param("since_id"));
            ctx.events.open(
                relay,
                channel,
                cursor,
                stream_login(ctx, req),
                req.who.clone(),
            )
        }
        Route::RelayEvents => ctx
            .events
            .open_relay(relay, req.who.clone(), stream_login(ctx, req)),
        Route::Agents => api::handled(api::agents(relay, req)),
        Route::Agent(rest) => api::handled(api::agent(relay, req, rest)),
        Route::Card => api::handled(api::card(relay, req)),
        Route::Sse => ctx
            .sse
            .open(relay, policy::authorization(headers), &req.who),
        Route::SseMessage => {
            ctx.sse
                .post(relay, req.query, policy::authorization(headers), &req.body)
        }
        Route::Mcp => ctx.mcp.serve(
            relay,
            &crate::transport::streamable::Request {
                method: req.method,
                session_id: header(headers, "Mcp-Session-Id"),
                protocol_version: header(headers, "MCP-Protocol-Version"),
                mcp_method: header(headers, "Mcp-Method"),
                mcp_name: header(headers, "Mcp-Name"),
                accept: header(headers, "Accept"),
                credential: policy::authorization(headers),
                who: &req.who,
                body: &req.body,
            },
        ),
        Route::Metrics => metrics(ctx),
        Route::ApiOther => api::not_found(),
        Route::Other { .. } if ctx.config.dashboard => api::asset(req),
        Route::Other { .. } => api::not_found(),
    }
}

/// The dashboard login a stream was opened with (a cookie, not a bearer): the stream ends when
/// the login does.
fn stream_login(ctx: &Ctx, req: &Req<'_>) -> Option<crate::events::Login> {
    let headers = req.headers;
    (ctx.config.auth_token.is_some() && header(headers, "Authorization").is_none())
        .then(|| crate::login::cookie_value(&all(headers, "Cookie")))
        .flatten()
        .map(|c| (Arc::clone(&ctx.logins), c.to_owned()))
}

/// Check the route's [`Need`] against who asks. The admin passes without a look; an agent's
/// denial is audited and answered 403 (field `channel` or `authorization`, code `forbidden`).
/// A request that names no channel (or not as a string) is left to the handler's validation.
fn authorize(
    relay: &crate::relay::Relay,
    route: &Route<'_>,
    need: Need,
    req: &Req<'_>,
) -> Result<(), Error> {
    if matches!(req.who, Principal::Admin) {
        return Ok(());
    }
    let check = |mode: Mode, channel: Option<String>| match channel {
        Some(c) if !c.is_empty() => relay.check(&req.who, mode, &c),
        _ => Ok(()),
    };
    match need {
        Need::Any => Ok(()),
        Need::Query(mode) => check(mode, req.query_param("channel")),
        Need::Body(mode) => {
            let channel = crate::json::parse_body(&req.body).ok().and_then(|v| {
                v.get("channel")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            });
            check(mode, channel)
        }
        Need::Path(mode) => match route {
            Route::Events(raw) => check(mode, crate::wire::percent_decode(raw, false)),
            _ => Ok(()),
        },
        Need::Admin => relay.check_admin(&req.who),
        Need::AdminToChange if GET.contains(req.method) => Ok(()),
        Need::AdminToChange => relay.check_admin(&req.who),
    }
}

/// `GET /metrics`: the counters with the gauges read now.
fn metrics(ctx: &Ctx) -> Reply {
    let (messages, channels) = match ctx.relay.channels() {
        Ok(c) => (c.values().map(|s| s.count).sum(), c.len() as u64),
        Err(e) => return api::handled(Err(e)),
    };
    let text = ctx.metrics.render(&crate::metrics::Gauges {
        messages,
        channels,
        streams: vec![
            ("sse", ctx.sse.open_count() as u64),
            ("mcp_get", ctx.mcp.open_streams() as u64),
            ("events", ctx.events.total() as u64),
        ],
        in_flight: ctx.busy.load(std::sync::atomic::Ordering::SeqCst) as u64,
        uptime_seconds: ctx.relay.uptime_seconds(),
    });
    let mut r =
        Reply::empty(200).with_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    r.body = text.into_bytes();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_paths() {
        for p in [
            "/api/state",
            "/api/nope",
            "/sse",
            "/mcp",
            "/messages/",
            "/events/channel/a",
            "/events/x",
        ] {
            assert!(Route::parse(p).rule().protected, "{p}");
        }
        for p in ["/status", "/", "/app.js", "/mcp/x", "/ssex", "/api"] {
            assert!(!Route::parse(p).rule().protected, "{p}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        for (path, label) in [
            ("/api/messages/abc", "/api/messages/{id}"),
            ("/api/messages/", "/api/messages/{id}"),
            ("/messages/?session_id=1", "/messages/"),
            ("/events/channel/x:y", "/events/channel/{channel}"),
            ("/api/zzz", "/api/other"),
            ("/favicon.ico", "/other"),
        ] {
            assert_eq!(Route::parse(path).rule().label, label, "{path}");
        }
    }

    #[test]
    fn json_bodies() {
        for p in ["/api/send", "/api/ack", "/api/clear", "/mcp", "/messages/x"] {
            assert!(Route::parse(p).rule().json_body, "{p}");
        }
        for p in ["/api/session", "/api/state", "/status", "/"] {
            assert!(!Route::parse(p).rule().json_body, "{p}");
        }
    }
}
