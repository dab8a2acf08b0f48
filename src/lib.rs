//! # claude-bridge
//!
//! A relay that lets AI coding agents on different machines talk to each other over named
//! channels. One small always-on box runs it; agents connect over MCP, people watch through a
//! dashboard, scripts use a JSON API, and every message persists in SQLite.
//!
//! ## Bird's-eye view
//!
//! A request enters through tiny_http's accept thread and waits in its queue; a fixed pool of
//! worker threads ([`http`]) pulls requests and runs each through one pipeline: the path is
//! parsed once into a route of the route table (`http::routes`), whose rule says what the
//! policy stages ask (CORS, Host, Origin, media type, authentication, body limits:
//! `http::policy`) and which handler answers: MCP transport paths go to [`transport`], the JSON
//! API to [`api`], event streams to [`events`], sign-in to [`login`]. MCP messages, from any
//! transport, go through [`mcp::handle`], whose tool table calls the same [`relay`] operations
//! the JSON API calls. [`relay`] is the only way to the data: it validates with [`validate`] /
//! [`model`], writes or reads through [`store`] (one mutex-guarded SQLite connection), and
//! announces changes on [`hub`] (a `Mutex` + `Condvar` wake-up); both are private to it.
//! Handlers return a [`wire::Reply`] value; only then is anything written to the socket. A
//! reply may carry a stream or a deferred computation, which the front hands to a thread of
//! its own (`http::handoff`), or a parked long-poll, which waits without one ([`parked`]).
//! With `--stdio` there is no HTTP at all: [`transport::stdio`] feeds stdin lines to the same
//! [`mcp::handle`]. The [`client`] wing talks to a relay from
//! outside (scripting subcommands, the terminal UI); [`cli`] parses every argv.
//!
//! Imports run one way, with no circle (checked over every `crate::` path): `main` → [`app`] →
//! [`http`] (+ [`hangups`], [`parked`]) → [`config`] → [`transport`] / [`api`] / [`events`] /
//! [`login`] (+ [`expiring`], [`dashboard`]) → [`mcp`] → [`wire`] → [`relay`] → [`store`] +
//! [`hub`] → [`model`] / [`validate`] / [`json`] / [`clock`] / [`ids`] / [`error`] /
//! [`metrics`]; and `main` → [`client`] → [`config`] / [`cli`] (→ [`validate`]). [`config`]
//! reads the defaults it resolves from [`relay`] and [`transport`]; [`wire`] carries who a
//! request acts as (`relay::agents::Principal`) and the hub ticket of a parked reply, so it
//! sits just above [`relay`]; `client::agents` (the `agent` subcommand on a db file) opens the
//! relay and store directly.
//!
//! Who asks: the pipeline's authentication turns a request into a
//! [`relay::agents::Principal`] (the admin, or an agent by its own token), carried in
//! [`wire::Req`], an MCP `Session` and a login; each route's rule (`routes::Need`) and each
//! tool (`mcp/tools` `Need`) names what it needs, checked before the handler runs.
//!
//! Words: a *session* is an MCP session (legacy SSE or `/mcp`; `mcp::Session` is its protocol
//! state); a dashboard sign-in (`/api/session`, the cookie) is a *login*.
//!
//! ## Modules
//!
//! - [`cli`]: lexopt parsing of argv into raw flags and subcommand words; no I/O. The help
//!   texts. `cli::scripts` holds the scripting subcommands' words.
//! - [`config`]: flags > token file > environment resolution, limits with defaults, start-up
//!   checks, the banner.
//! - [`app`]: the composition root; opens the relay (which starts the db watcher),
//!   housekeeping, binds, prints the banner, serves.
//! - [`http`]: the front. `http/mod.rs`: listener (`TCP_NODELAY`, timeouts), the worker pool,
//!   the pipeline, graceful shutdown. `routes`: the route table, each route's rule
//!   (methods, auth, JSON body, metrics label) and its dispatch. `policy`: CORS, Host, Origin,
//!   authentication, body framing, the headers on every reply. `handoff`: streams and deferred
//!   replies on their own threads.
//! - [`client`]: the client wing. `client/mod.rs` is a small blocking HTTP/1.1 client (whole
//!   replies and event streams); `client::scripting` runs the subcommands `send`, `receive`,
//!   `wait`, `tail`, `channels`, `status` that script any relay by URL and token (exit 0 done,
//!   1 unreachable or refused, 2 usage, 3 `wait` timed out); `client::tui` (cargo feature
//!   `tui`) is `claude-bridge tui`, a ratatui + crossterm terminal UI: `state` is the screen as
//!   pure data with a reducer (unit-tested), `net` follows `/events/relay` (reading
//!   `/api/state` and `/api/agents` on its `ready`) and the selected channel's event stream on
//!   its own threads, `ui` draws (the agents above the channels). The terminal is restored on every
//!   exit path, panics included. Without the feature, `claude-bridge tui` exits 2 with one line
//!   saying how to get it.
//!   `client::wake` is `claude-bridge wake CHANNEL... --consumer ID`, the `asyncRewake` hook
//!   that wakes an idle Claude Code session (a long-poll thread per channel, delivery
//!   acknowledged on the consumer's cursor, then printed to stderr with exit 2);
//!   `client::setup` is `claude-bridge setup claude-code` (the wake hooks and the MCP server
//!   entry merged into Claude Code's settings) and `claude-bridge auth-header` (that entry's
//!   header helper). Their words are parsed in `cli::wake` and `cli::setup`.
//! - [`metrics`]: counters and the Prometheus text of `GET /metrics` (requests by route label
//!   and status, sends, busy answers; gauges read at scrape time). `/metrics` and the readiness
//!   check `GET /api/ready` (a write transaction opened and rolled back) need the token like the
//!   API; `/status` stays public and never touches the database.
//! - [`hangups`]: one thread that polls (one `poll(2)` over all of them) the sockets of
//!   long-polls answered with one body and cancels those whose client has gone.
//! - [`parked`]: long-polls that wait without a thread: a registry of waits keyed by channel,
//!   told of publishes by the hub's listener, with a deadline heap and two runner threads that
//!   look at the store again and write the reply.
//! - [`wire`]: the request view and reply value shared by the front and the handlers.
//! - [`api`]: the JSON API handlers.
//! - [`transport`]: MCP transports. `stdio` (one JSON-RPC message per line), `sse` (legacy
//!   HTTP+SSE, deprecated by the specification, handshake era only: session registry, event
//!   streams on their own threads) and `streamable` (Streamable HTTP at `/mcp`: sessions, header
//!   checks, GET stream, DELETE, stateless mode; 2026-07-28 requests and their
//!   `subscriptions/listen` streams). `stdio` and `streamable` choose the era per message.
//!   `push`: channel push for `--stdio --push` (the `claude/channel` capability and a thread
//!   per channel sending `notifications/claude/channel`, delivery recorded like `wake`'s); such
//!   a session serves the handshake era only.
//! - [`mcp`]: the transport-agnostic MCP core: JSON-RPC dispatch with the panic boundary,
//!   `initialize` negotiation, [`mcp::spawn`] (the one way a call runs off the request path),
//!   the tool table (`mcp/tools`: each tool once with its schema, whether it may wait, and its
//!   function; message tools and task tools in their own files), the schema-driven argument
//!   check (`mcp/schema.rs`), and the conformance-suite fixture tools (only with
//!   `CLAUDE_BRIDGE_CONFORMANCE_FIXTURES`). [`mcp::era`] is the 2026-07-28 revision beside the
//!   handshake era: which era a message asks for, the revision's checks and errors (-32020,
//!   -32022, -32602, -32601/404), `server/discover`, and the dress of its results
//!   (`resultType`, `ttlMs`/`cacheScope`, the server's identity); a transport marks the session
//!   copy of a checked request [`mcp::Session::modern`] and [`mcp::handle`] answers in that era.
//! - [`dashboard`]: `static/` (`index.html`, `style.css`, `app.js`: plain HTML/CSS/JS, no build
//!   step) embedded with `include_bytes!`. The page lists channels from `/api/state` and the
//!   roster from `/api/agents` when `/events/relay` says `ready`, then keeps both live from that
//!   stream (no polling), follows the selected channel over `/events/channel/…` with
//!   `EventSource` (cookie auth, automatic reconnect with `Last-Event-ID`), inspects
//!   `/api/messages/{id}`, sends and clears through the JSON API, and signs in by trading the
//!   token for the login cookie (never storing it). The page has no inline code or style
//!   attributes (colours go through the CSSOM), so it needs nothing beyond the contract's CSP.
//! - [`events`]: live channel event streams (`/events/channel/…`): subscriber caps, replay from
//!   `Last-Event-ID`, tailing the event outbox through [`relay::Relay::next_events`]; and the
//!   relay-wide stream (`/events/relay`) reading [`relay::live`].
//! - [`expiring`]: a capped map of entries that expire, swept in O(1) amortised (the `/mcp`
//!   sessions and the dashboard logins).
//! - [`login`]: dashboard logins (`/api/session`): the token traded for an HttpOnly cookie,
//!   kept in memory.
//! - [`relay`]: the operations (send, read, wait, ack, clear, channels, audit, readiness, event
//!   replay, the db watcher) and `relay::tasks`, the task queue's argument rules, caps and
//!   operations (enqueue, claim with waiting, complete, fail, lease expiry) with their
//!   wake-ups; one [`relay::MAX_WAIT`] bounds every wait. The one place the JSON API, the MCP
//!   tools and the event streams call. `relay::agents`: agents, grants (`PATTERN=MODE`), the
//!   principal, the checks (`check`, `check_admin`, `check_sender`) and agent management;
//!   `relay::presence`: last seen, holds, cards, the roster; `relay::live`: the relay-wide
//!   event feed (a ring in memory) behind `/events/relay`; `relay::audit`: rejections audited
//!   as a bounded excerpt, repeats folded into one row.
//! - [`store`]: SQLite. `mod.rs`: opening, pragmas, the mutex, readiness and checkpoint;
//!   `schema` (and forward migration), `messages` (reads, acks, clears), `sends` (group commit:
//!   concurrent sends queue, the first to take the connection stores every queued one in one
//!   transaction, a savepoint each, and each reply still follows its own `COMMIT`), `tasks`
//!   (the queue's SQL), `audit`, `outbox` (the event outbox and the `data_version` watcher),
//!   `notify` (inotify on the db and its WAL, which ends the watcher's sleep on another
//!   process's write), `agents` (agents by token hash, grants, presence rows), `housekeeping`
//!   (sweeps), `stats` (channel statistics kept in memory).
//! - [`hub`]: wake-ups for waiters, with tickets that make lost wake-ups impossible.
//! - [`model`]: stored messages and their four JSON representations; `model::envelope`,
//!   protocol-v1 envelopes (checks and canonical form).
//! - [`validate`]: the shared field rules and the §4.1 error shape.
//! - [`json`]: strict request-body parsing (depth limit, no NaN, no lone surrogates) and the
//!   canonical form.
//! - [`clock`]: RFC 3339 timestamps with exactly six fractional digits.
//! - [`ids`]: UUIDs and tokens from the OS CSPRNG.
//! - [`error`]: the one operation error type and its HTTP mapping.
//!
//! ## Invariants
//!
//! - The store is the source of truth; the hub is only a wake-up. A reader takes a hub ticket
//!   before it queries, so a publish between its query and its wait is never missed.
//! - Every write is one `BEGIN IMMEDIATE` transaction; a 200 means the row is committed.
//! - No lock is held across network I/O: handlers lock, query, unlock, and return a value that
//!   the worker writes afterwards.
//! - Requests run on a fixed worker pool; long-lived streams never do: each stream has its own
//!   256 KiB-stack thread (`http::handoff`) that owns only what it writes (a legacy-SSE stream:
//!   a channel receiver), and ends (freeing its session) when a write fails, at the latest at
//!   the next keep-alive.
//! - Every path is named once, in the route table (`http::routes`): its methods, whether it
//!   needs authentication or a JSON body, and its metrics label come from its rule.
//! - A call that panics is answered, never fatal: a request handler's panic is a JSON 500
//!   (`http`), an MCP call's a JSON-RPC -32603 on every transport, `--stdio` included
//!   (`mcp::handle`).
//! - The MCP core never touches a socket; transports never interpret tool semantics. A message
//!   sent with `bridge_send` and one sent with `POST /api/send` pass the same validation and the
//!   same insert (`relay::parse_send` / `relay::send`).
//! - An MCP session is bound to the credential that opened it; a session id is not a credential.
//! - Every response carries the security headers and `Vary: Origin` (`http::EVERY_RESPONSE`):
//!   replies get them in `http::finish`, the connection-cap 503 spells them, and tiny_http's own
//!   answers (a malformed or slow head, another HTTP version) get them through
//!   `Server::set_own_headers`.
//! - `/api/state` reads channel statistics kept in memory and synced incrementally with other
//!   processes (new rows by `seq`, clears by the event outbox), so its cost grows with channels,
//!   not messages.
//! - Every limit lives in [`config::Limits`] with a default and has a test at its edge.
//! - The migration only adds; rows written by the original keep their bytes, and new messages
//!   get a `seq` above every old one (`sqlite_sequence` is never reset).
//!
//! ## Decisions where the spec is silent
//!
//! - Waking idle agents (issue 16). Delivery to an agent is the consumer cursor of
//!   `POST /api/ack`: `wake` and `--push` give a message once per consumer id, so the two paths
//!   (or two machines) sharing one consumer id never give it twice, and what came while nothing
//!   waited is given next time. `wake` acknowledges before it prints (a crash between the two
//!   loses the notice, never repeats it); `--push` writes the notification first and then
//!   acknowledges (its client can vanish mid-write). Messages whose sender is `--self` (default:
//!   the consumer id) are acknowledged unseen. `wake` exits 2 only with messages: usage errors
//!   and refusals (401/403, a 4xx on its arguments) exit 1, since exit 2 from an `asyncRewake`
//!   hook hands stderr to the model and a Stop hook failing that way would wake it after every
//!   turn; transient failures (no connection, 5xx, 408/429) are retried every 250 ms doubling
//!   to 2 s and never printed (stderr before a delivery would reach the model with it). It
//!   shows messages of all its channels in `seq` order within `--max-bytes` (16 KiB): the first
//!   always, cut with a note when alone over the budget; the rest stay unacknowledged and come
//!   with the waiter the Stop hook starts right after the turn (the notice says so). Peer text
//!   sits between `<peer-message nonce=…>` tags whose random nonce its author cannot know.
//!   The single-waiter lock is `flock` on `claude-bridge-wake-<hash of URL and consumer>.lock`
//!   in `$XDG_RUNTIME_DIR`, else in `<temp>/claude-bridge-<uid>/` (created 0700; refused when
//!   another user owns it or others may write to it). A waiter ends (exit 0) within
//!   a second when its parent, or the session above a hook shell, is gone. Only `http://`
//!   relays (the scripting client has no TLS).
//! - `setup claude-code` writes to `local` scope by default (hooks in
//!   `.claude/settings.local.json`, the MCP entry under `~/.claude.json`'s project), since a
//!   consumer id belongs to one person's machine. Its hooks are recognised for replacement by
//!   the command `<this binary> wake … --consumer <id> …`; other hooks are kept. A token file is
//!   named by absolute path; the MCP entry reads it through `headersHelper` (Claude Code runs a
//!   project's helper only in a folder whose trust dialog was accepted). `--print` prints only
//!   the hooks (Claude Code's settings carry no MCP servers) and names the `claude mcp add-json`
//!   line on stderr.
//! - Bind addresses are numeric (a static binary cannot rely on a resolver); `localhost` is
//!   accepted and means 127.0.0.1.
//! - Connections inherit a 30 s write timeout from the listening socket, so a client that stops
//!   reading cannot pin a worker forever.
//! - Waiting never holds a request worker, and an `/api/wait` holds no thread at all: it is
//!   parked ([`parked`]) under its channel with the hub ticket taken before its first read; a
//!   publish on that channel (and only that channel: no other waiter is woken), its deadline,
//!   a hang-up or shutdown queue it for one of two runner threads (a wait with news goes
//!   before one whose deadline passed, so a burst of timeouts of waits armed together never
//!   delays a delivery), which read the store again
//!   and either re-park it or hand the reply to a short-lived thread that writes it whole,
//!   with its length (keep-alive survives), once the request's writer has its turn (so
//!   replies to pipelined requests stay in order; a runner never waits for that turn: two
//!   runners each behind a reply the other must write would stall every parked wait). Over
//!   TLS the wait runs on a thread of its own, looking again at each publish. A waiting MCP
//!   call runs on its own thread on every transport (stdio included, so a session's other
//!   requests go on). An idle keep-alive connection holds no thread either (tiny_http patch 15:
//!   parked in one epoll set until readable), so an idle agent costs a socket and a few KiB,
//!   and the relay's threads do not grow with its agents (10,000 agents: ~400 threads, most of
//!   them tiny_http's pool, which shrinks after 5 idle seconds). The relay raises its soft
//!   open-file limit to the hard one at start (a default of 1024 would stop it near a thousand
//!   agents). A `PRAGMA data_version` watcher thread per process reads the outbox rows other
//!   processes wrote since its last look and wakes only those channels; it looks as soon as
//!   inotify reports a write to the db or its `-wal` file (one descriptor on the db's
//!   directory, filtered by name; a write that shows no change yet is looked at again 0.2,
//!   0.7, 1.7, 3.7 and 7.7 ms later: the first write of a commit wakes it before the commit is
//!   visible, and the WAL index in `-shm` is written through a mapping inotify never sees), and
//!   every `CLAUDE_BRIDGE_EVENT_POLL_MS` (50 ms by default) in any case, the fallback where
//!   inotify is missing or a file system reports nothing (network mounts). This process's own
//!   commits wake their channels at commit and nothing more.
//!   Changes that write no outbox row (acks, retention) wake no waiter on messages. Task
//!   operations write no outbox row either: a waiting claim sleeps on a hub key of its own
//!   (`relay::tasks::task_key`), woken at once by an enqueue or requeue here, by the watcher on any
//!   commit it notices (for channels with a waiting claim; the claim re-checks, one indexed
//!   query), and by its own deadline: the next delayed task coming due or lease lapsing.
//!   Lease expiry is lazy (at each claim of the channel and in the housekeeping sweep). A streamed `/mcp` wait writes
//!   keep-alive comments and is cancelled when a write fails (the client left); a wait answered
//!   with one body (`/api/wait`, JSON-only `/mcp`) is watched by `hangups`, which polls its
//!   socket every 200 ms and cancels it when the client has closed or reset the connection
//!   (TLS included: the hang-up is seen behind an unread `close_notify`).
//! - Live channel events are not queued in memory: each subscriber thread tails the event outbox
//!   (`bridge_events`) by `event_seq`, so events from every process arrive in commit order and a
//!   reconnect with `Last-Event-ID` replays from the messages table. A subscriber that finds more
//!   than 100 live events waiting for it (it reads slower than they come) is dropped so it
//!   reconnects and replays, as is one whose write times out (30 s: it stopped reading); both
//!   count in `sse_dropped_events`.
//! - `notifications/cancelled` ends a pending wait; the cancelled request gets no response.
//! - Stored content is parsed without recursion (`json::parse_stored`; a heap stack, strings and
//!   numbers still decoded by serde_json), because it is classified on small-stack stream and
//!   long-poll threads and any client may store deeply nested text: a stack overflow would abort
//!   the process. Request bodies are parsed by serde on the 2 MiB workers after a depth pre-scan.
//! - Audit rows, when enabled, never change a request's outcome: write failures are logged.
//! - Identity (issue 18). A relay with no agents answers exactly as before: every caller is the
//!   admin. The admin token (flag, file, env), a login made with it, and a loopback caller of a
//!   relay without a token are the admin; a bearer that is an agent's token is that agent (also
//!   on a relay without an admin token, where any other bearer is still ignored as before). A
//!   `--stdio` relay acts as the agent whose token it was given, else as the admin (whoever runs
//!   it owns the db file anyway). Grants are a set: `read` and `write` on one pattern are two
//!   grants, `admin` covers both and allows clear; there is no way to take one grant back but
//!   revoking and re-adding. `GET /api/messages/{id}` of an unreadable channel is 404 (the
//!   request names no channel, so a 403 would reveal it). `/api/audit` and managing agents need
//!   the admin (or an admin agent); `/metrics`, `/api/ready` and the roster any caller. An
//!   agent may leave `sender` out (its name is used). Revoking raises the agent's flag and wakes
//!   every waiter: channel and relay streams end at once, `/sse` and `/mcp` GET streams within
//!   250 ms, its dashboard logins end, and a wait or call still running answers 401 /
//!   `forbidden` instead of data. Other processes' agent changes (`agent … --db` beside a
//!   running relay) are read when the db watcher sees a commit (`bridge_agents` fingerprint).
//! - Presence: `last_seen` reaches `bridge_presence` at most every min(window / 3, 15 s) per
//!   name; a `--stdio` agent writes a heartbeat (once a second, driven by the db watcher's poll,
//!   no thread of its own) so a relay on the same file shows it online.
//!   With agents defined the roster is the agents; without, every sender and consumer name
//!   seen (since this version). Cards are set by the agent itself (`bridge_card`, `POST
//!   /api/card`; the admin names whose): that is the API `wake` (issue 16) uses to fill in
//!   machine and directory. A revoked agent shows offline; a presence sweep once a second (the same tick)
//!   announces names whose window ran out.
//! - The relay-wide feed is a 1,024-event ring in memory, not a history: a reader that falls
//!   out of it gets `ready` again (and re-reads the state). With no reader, sends do not even
//!   describe themselves for it. Channel events reach only readers who may read the channel;
//!   presence events reach everyone.
//! - Housekeeping deletes in batches of at most 10,000 rows, each its own short transaction.
//! - Streams (legacy SSE, `/mcp`) are sent with chunked encoding, one chunk per event, so their
//!   end is marked and the connection can be reused.
//! - `/mcp` answers a request with one JSON body, except a call that may take long or emit
//!   notifications (`mcp::may_stream`: `bridge_wait`, `bridge_claim` with `wait_seconds`, and
//!   the conformance fixtures that notify) from a client that accepts `text/event-stream`: that
//!   call runs on its own thread ([`mcp::spawn`]), off the request workers, and a stream thread
//!   writes each notification as it happens, keep-alives while it waits, and the result last.
//! - `/mcp` sessions idle for 30 minutes are dropped when next touched, and swept in O(1)
//!   amortised when one is created ([`expiring`]); at most `CLAUDE_BRIDGE_MAX_MCP_SESSIONS`
//!   (10,000) live at once and `CLAUDE_BRIDGE_MAX_LOGINS` (10,000) dashboard logins, 503 with
//!   `Retry-After` beyond (a full map never evicts a live session: that would let anyone log
//!   others out). The legacy-SSE, `/mcp` GET and `subscriptions/listen` streams each count
//!   against `CLAUDE_BRIDGE_MAX_MCP_STREAMS`.
//! - Every call or long-poll that waits off the request path on a thread of its own holds a
//!   slot of `CLAUDE_BRIDGE_MAX_WAITING` (1,024) for as long as its thread lives: `/api/wait`
//!   over TLS (over plain HTTP it is parked, holds no thread and no slot, and at most
//!   `CLAUDE_BRIDGE_MAX_CONNECTIONS` are parked at once, 503 with `Retry-After: 1` beyond),
//!   JSON-only `/mcp` waits, every [`mcp::spawn`] (legacy `POST /messages/`, streamed `/mcp` calls,
//!   `--stdio`, each waiting call of a batch). Beyond: 503 with `Retry-After: 1`, or a
//!   JSON-RPC error where the answer is a stream or a line. Waits are not tied to connections
//!   (pipelined over one keep-alive connection, posted to one SSE session), so only this cap
//!   bounds their threads.
//! - A 2025-03-26 JSON-RPC batch on `/mcp` with a call that may wait is answered from a thread
//!   of its own, its waiting calls side by side on theirs; the client leaving cancels them all.
//! - Audit rows of rejections hold the path cut to `CLAUDE_BRIDGE_AUDIT_DETAIL_BYTES` (256,
//!   `…` marks a cut), and repeats of one kind from one address within
//!   `CLAUDE_BRIDGE_AUDIT_FOLD_SECONDS` (60) of the first rewrite its row with a count instead
//!   of adding rows; at most 1,024 such windows are open at once.
//! - The bearer token is compared as SHA-256 digests with `constant_time_eq_32`: no early
//!   return on a wrong length.
//! - MCP 2026-07-28 (the stateless revision) is served beside the handshake era on `/mcp` and
//!   `--stdio`, chosen per request: a request whose `_meta` names a protocol version, whose
//!   method exists only in that revision (`server/discover`, `subscriptions/listen`) or (HTTP)
//!   whose `MCP-Protocol-Version` is not a handshake version is checked by `mcp::era::check` and
//!   run on a session copy marked modern (no session is created or looked up; a stray
//!   `Mcp-Session-Id` is ignored); everything else, `initialize` first, is the handshake era
//!   exactly as before. `/sse` stays handshake-only. Decisions: `server/discover` and -32022 list
//!   every revision we serve, newest first (2026-07-28 statelessly, the rest through
//!   `initialize`); `server/discover` and `tools/list` are `cacheScope: public` (the tool table
//!   holds nothing per user) with `ttlMs` one hour (it is fixed for a process's life; the hour
//!   bounds how long an upgrade goes unseen); an unknown tool stays an `isError` result as the
//!   contract says, not -32602; other JSON-RPC errors of a modern request are 400 (-32600,
//!   -32602, -32700, -320xx), 404 (-32601) or 200. Log messages go only to a request that
//!   opted in with `io.modelcontextprotocol/logLevel`. `subscriptions/listen` is acknowledged
//!   with an empty filter (our tool list never changes; we have no prompts or resources) and
//!   then carries nothing: over HTTP a stream thread writes keep-alives, counts against
//!   `CLAUDE_BRIDGE_MAX_MCP_STREAMS`, and ends with the graceful result when the relay stops;
//!   on stdio it holds no state, and `notifications/cancelled` for it needs nothing. GET and
//!   DELETE naming the modern version are 405. `Settings::modern_era` turns the revision off
//!   for a process (one that pushes into Claude Code, which refuses pushes on 2026-07-28
//!   connections, must stay on the handshake era): its modern requests then get the handshake
//!   era's answers, so clients fall back to `initialize`.
//! - A storage failure other than "busy" (disk full, I/O error) answers 503 with a JSON error
//!   and is logged on stderr; it never becomes a 500.
//! - SIGTERM/SIGINT is a graceful stop: the listener closes at once; every wait ends with its
//!   normal result, every stream (event, `/sse`, `/mcp` GET, `subscriptions/listen` and streamed
//!   calls) writes its final chunk; requests in progress (counted from the arrival of their head until answered) finish
//!   within 4 s; the write-ahead log is checkpointed (TRUNCATE); the process exits 0.
//! - A new connection that sends nothing for `CLAUDE_BRIDGE_SILENT_SECONDS` (5) after its
//!   accept is closed without an answer; its first head must be complete 10 s after the accept,
//!   a later one 10 s after its first byte (408, then closed; slow-loris). Lines of at most
//!   16 KiB and at most 128 header lines (400); a head of at most `CLAUDE_BRIDGE_MAX_HEAD_BYTES`
//!   (64 KiB, 431 beyond); all heads held at once (being read, or of requests not yet answered)
//!   at most `CLAUDE_BRIDGE_HEAD_MEMORY_BYTES` (64 MiB, 503 with `Retry-After: 1` beyond). At most
//!   `CLAUDE_BRIDGE_MAX_CONNECTIONS` (16,384) connections are read at once; one more gets 503
//!   with `Retry-After: 1` and is closed, without a thread of its own.
//! - Connections inherit a 30 s read timeout: an idle keep-alive connection is closed after it
//!   (a waiting request reads nothing meanwhile).
//! - A body is read only where a handler uses it (a POST to `/api/send`, `/api/ack`,
//!   `/api/clear`, `/mcp`, `/messages/`), and whole before a worker sees the request: tiny_http
//!   reads it on the connection's own thread (up to the body limit, held within
//!   `CLAUDE_BRIDGE_BODY_MEMORY_BYTES`, 64 MiB, a budget apart from the heads'; past it the
//!   worker reads the body), and it must
//!   arrive within `CLAUDE_BRIDGE_BODY_TIMEOUT_SECONDS` (10) of the head (else 400
//!   `content-length mismatch` after authentication, as for a body cut short; 401 without a
//!   token). Framing headers are checked on every mutation. A body
//!   left unread (refused, not needed, or cut off by an error such as a bad chunk or the size
//!   limit) is never drained: the answer says `Connection: close`, the connection ends after
//!   it, and tiny_http's thread for the connection shuts the sending side and discards what
//!   still comes for at most 2 s (so the close does not reset the answer away). Nothing after
//!   such a body is ever parsed as a request.
//! - HTTPS (`--tls-cert`/`--tls-key`) is served by the relay itself in a build with the `tls`
//!   feature (rustls 0.23 + aws-lc-rs through the vendored tiny_http's `ssl-rustls`, made full
//!   duplex there: a read never holds the TLS lock while it waits on the socket, so streams and
//!   keep-alive long-polls behave as over plain HTTP). Certificate and key are read before
//!   the db is opened and parsed before anything is served or printed (exit 1 naming the file
//!   or the reason). The TLS handshake shares the 10 s head
//!   timeout, counted from the accept. A build without the feature exits 1 on the flags and says
//!   how to get it. Not default: it adds a C crypto library to the build and the binary.
//!   Connections over the connection cap are refused in clear text (the 503 is not readable by a
//!   TLS client; it sees the connection close).
//! - tiny_http 0.12.0 is used with the patches listed in `src/vendor/tiny_http/PATCHED.md`,
//!   each with its regression test. Among them: it drained
//!   an unread body into a buffer of the size the client declared, so a refused request with a
//!   huge `Content-Length` aborted the process; its accept thread ended on any `accept()` error
//!   (the EAGAIN that the listener's receive timeout produces every 30 s of idleness, or EMFILE
//!   in a connection flood); and it panicked that thread when splitting a socket (dup) failed
//!   (the halves now share one socket, which a `ConnectionHandle` also reaches for `hangups`).
//!   Now only an error that says the listening socket itself is gone stops the listener (the
//!   relay then exits 1 for its supervisor); anything else is retried with a backoff of at most
//!   100 ms, reported on stderr at most every 10 s, so service comes back by itself when a flood
//!   of connections ends. Signal handlers and other descriptors are set up before the first
//!   accept. It gave every connection a thread for life; now an idle plain-TCP keep-alive
//!   connection is parked in one epoll set (patch 15), which is what lets one relay carry
//!   10,000 agents.
//!

pub mod api;
pub mod app;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod expiring;
pub mod hangups;
pub mod http;
pub mod hub;
pub mod ids;
pub mod json;
pub mod login;
pub mod mcp;
pub mod metrics;
pub mod model;
pub mod parked;
pub mod relay;
pub mod store;
pub mod transport;
pub mod validate;
pub mod wire;
