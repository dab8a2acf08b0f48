//! The terminal UI's state and its reducer: pure data, no I/O, so every rule is unit-tested.

use serde_json::Value;

/// One channel as the sidebar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Full name.
    pub id: String,
    /// Messages stored.
    pub count: u64,
    /// Last activity (stored timestamp).
    pub last: String,
}

/// One roster entry as the roster panel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The agent (or sender) name.
    pub name: String,
    /// Online now.
    pub online: bool,
    /// Last seen (rendered timestamp), if ever.
    pub last_seen: Option<String>,
    /// The card in one line (machine · repo or directory · task).
    pub card: String,
}

impl Member {
    /// From a roster entry of `/api/agents` or a `presence` event.
    pub fn from_json(v: &Value) -> Member {
        let c = &v["card"];
        let parts: Vec<&str> = [
            c["machine"].as_str(),
            c["repo"].as_str().or(c["directory"].as_str()),
            c["task"].as_str(),
        ]
        .into_iter()
        .flatten()
        .collect();
        Member {
            name: v["name"].as_str().unwrap_or_default().to_owned(),
            online: v["online"] == true,
            last_seen: v["last_seen"].as_str().map(str::to_owned),
            card: parts.join(" · "),
        }
    }
}

/// `1 message`, `2 messages`.
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// One message in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Message id.
    pub id: String,
    /// Sequence number.
    pub seq: i64,
    /// Sender.
    pub sender: String,
    /// Timestamp.
    pub time: String,
    /// Content as stored.
    pub content: String,
}

impl Message {
    /// The JSON `type` field of the content, if it is a JSON object with one.
    pub fn kind(&self) -> Option<String> {
        let t = self.content.trim_start();
        if !t.starts_with('{') {
            return None;
        }
        serde_json::from_str::<Value>(t)
            .ok()?
            .get("type")?
            .as_str()
            .map(str::to_owned)
    }

    /// The content pretty-printed when it is JSON, else as it is.
    pub fn pretty(&self) -> String {
        match serde_json::from_str::<Value>(self.content.trim()) {
            Ok(v) if v.is_object() || v.is_array() => {
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| self.content.clone())
            }
            _ => self.content.clone(),
        }
    }
}

/// A colour index (0..COLOURS) for a sender or message type, stable for a given name.
pub fn colour_of(name: &str) -> usize {
    let mut h: u32 = 0;
    for b in name.bytes() {
        h = h.wrapping_mul(31).wrapping_add(u32::from(b));
    }
    (h % COLOURS as u32) as usize
}

/// How many colours names are spread over.
pub const COLOURS: usize = 6;

/// Which panel has the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The channel list.
    Channels,
    /// The feed.
    Feed,
}

/// What the keyboard is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Browsing.
    Normal,
    /// Typing a message (the text so far).
    Compose(String),
    /// Typing a filter.
    Filter(String),
    /// Typing a new channel's name.
    NewChannel(String),
    /// Asking whether to clear the selected channel.
    ConfirmClear,
    /// Showing the keys.
    Help,
}

/// Whether the relay answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not yet known.
    Connecting,
    /// Answering.
    Online,
    /// Not answering, with why.
    Offline(String),
    /// The token was refused or is missing.
    Unauthorized,
}

/// Everything on screen.
#[derive(Debug, Clone)]
pub struct App {
    /// The relay's URL.
    pub url: String,
    /// Who sends from here.
    pub sender: String,
    /// Relay reachability.
    pub link: Link,
    /// `uptime_human` of the relay.
    pub uptime: String,
    /// Total messages.
    pub total: u64,
    /// Channels, sorted by name.
    pub channels: Vec<Channel>,
    /// The roster, sorted by name.
    pub roster: Vec<Member>,
    /// The selected channel.
    pub selected: Option<String>,
    /// The selected channel's messages, oldest first.
    pub feed: Vec<Message>,
    /// Index into the visible feed of the highlighted message.
    pub cursor: usize,
    /// Case-insensitive substring filter over sender and content.
    pub filter: String,
    /// Live messages are held back while paused.
    pub paused: bool,
    /// Messages that arrived while paused.
    pub held: Vec<Message>,
    /// Whether the inspector shows.
    pub inspector: bool,
    /// Which panel has the keyboard.
    pub focus: Focus,
    /// What the keyboard does.
    pub mode: Mode,
    /// A one-line notice (errors, confirmations).
    pub notice: String,
    /// Set when the user asked to quit.
    pub quit: bool,
}

/// What the network side tells the UI.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// `/api/state`.
    State(Value),
    /// `/api/agents`.
    Roster(Value),
    /// A `channel` event of the relay-wide stream: a channel's counts now.
    Channel(Value),
    /// A `cleared` event of the relay-wide stream.
    ChannelGone(String),
    /// A `presence` event of the relay-wide stream.
    Presence(Value),
    /// A message event on a channel.
    Message(String, Message),
    /// The channel was cleared.
    Cleared(String),
    /// A channel's recent messages (after selecting it).
    History(String, Vec<Message>),
    /// The relay did not answer.
    Offline(String),
    /// 401.
    Unauthorized,
    /// A request's outcome to show.
    Notice(String),
}

/// What the UI asks the network side to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Fetch `/api/state` and `/api/agents` now.
    Refresh,
    /// Show this channel: load its messages and follow it.
    Follow(String),
    /// Send a message.
    Send {
        /// Channel.
        channel: String,
        /// Sender.
        sender: String,
        /// Text.
        content: String,
    },
    /// Clear a channel.
    Clear(String),
}

/// A key, reduced to what the UI uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
    /// Tab.
    Tab,
    /// Up arrow.
    Up,
    /// Down arrow.
    Down,
}

impl App {
    /// A fresh screen for `url`, sending as `sender`.
    pub fn new(url: &str, sender: &str) -> App {
        App {
            url: url.to_owned(),
            sender: sender.to_owned(),
            link: Link::Connecting,
            uptime: String::new(),
            total: 0,
            channels: Vec::new(),
            roster: Vec::new(),
            selected: None,
            feed: Vec::new(),
            cursor: 0,
            filter: String::new(),
            paused: false,
            held: Vec::new(),
            inspector: false,
            focus: Focus::Channels,
            mode: Mode::Normal,
            notice: String::new(),
            quit: false,
        }
    }

    /// Channels grouped by the part before the first `:` (`""` for none), groups sorted.
    pub fn groups(&self) -> Vec<(String, Vec<&Channel>)> {
        let mut out: Vec<(String, Vec<&Channel>)> = Vec::new();
        for c in &self.channels {
            let g = c.id.split_once(':').map_or("", |(g, _)| g).to_owned();
            match out.iter_mut().find(|(name, _)| *name == g) {
                Some((_, list)) => list.push(c),
                None => out.push((g, vec![c])),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The feed as shown: filtered, oldest first.
    pub fn visible(&self) -> Vec<&Message> {
        let f = self.filter.to_lowercase();
        self.feed
            .iter()
            .filter(|m| {
                f.is_empty()
                    || m.sender.to_lowercase().contains(&f)
                    || m.content.to_lowercase().contains(&f)
            })
            .collect()
    }

    /// The highlighted message.
    pub fn current(&self) -> Option<&Message> {
        let v = self.visible();
        v.get(self.cursor.min(v.len().saturating_sub(1))).copied()
    }

    /// Apply something the network side reported; may ask it for more.
    pub fn apply(&mut self, ev: Incoming) -> Vec<Request> {
        let mut out = Vec::new();
        match ev {
            Incoming::State(v) => {
                self.link = Link::Online;
                self.uptime = v["uptime_human"].as_str().unwrap_or_default().to_owned();
                self.total = v["total_messages"].as_u64().unwrap_or(0);
                self.channels = v["channels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| Channel {
                        id: c["id"].as_str().unwrap_or_default().to_owned(),
                        count: c["count"].as_u64().unwrap_or(0),
                        last: c["last_ts_full"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect();
                self.channels.sort_by(|a, b| a.id.cmp(&b.id));
                if self.selected.is_none() {
                    if let Some(first) = self.channels.first() {
                        self.selected = Some(first.id.clone());
                        out.push(Request::Follow(first.id.clone()));
                    }
                }
            }
            Incoming::Roster(v) => {
                self.roster = v["roster"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(Member::from_json)
                    .collect();
                self.roster.sort_by(|a, b| a.name.cmp(&b.name));
            }
            Incoming::Presence(v) => {
                let m = Member::from_json(&v);
                self.roster.retain(|x| x.name != m.name);
                if v["removed"] != true {
                    self.roster.push(m);
                    self.roster.sort_by(|a, b| a.name.cmp(&b.name));
                }
            }
            Incoming::Channel(v) => {
                let c = Channel {
                    id: v["channel"].as_str().unwrap_or_default().to_owned(),
                    count: v["count"].as_u64().unwrap_or(0),
                    last: v["last_ts_full"].as_str().unwrap_or_default().to_owned(),
                };
                match self.channels.iter_mut().find(|x| x.id == c.id) {
                    Some(x) => *x = c,
                    None => {
                        self.channels.push(c);
                        self.channels.sort_by(|a, b| a.id.cmp(&b.id));
                    }
                }
                self.total = self.channels.iter().map(|c| c.count).sum();
                if self.selected.is_none() {
                    if let Some(first) = self.channels.first() {
                        self.selected = Some(first.id.clone());
                        out.push(Request::Follow(first.id.clone()));
                    }
                }
            }
            Incoming::ChannelGone(ch) => {
                self.channels.retain(|c| c.id != ch);
                self.total = self.channels.iter().map(|c| c.count).sum();
            }
            Incoming::Message(ch, m) if Some(&ch) == self.selected.as_ref() => {
                if self.paused {
                    self.held.push(m);
                } else if !self.feed.iter().any(|x| x.id == m.id) {
                    self.feed.push(m);
                    self.cursor = self.visible().len().saturating_sub(1);
                }
            }
            Incoming::Message(..) => {}
            Incoming::Cleared(ch) => {
                if Some(&ch) == self.selected.as_ref() {
                    self.feed.clear();
                    self.held.clear();
                    self.cursor = 0;
                }
            }
            Incoming::History(ch, msgs) if Some(&ch) == self.selected.as_ref() => {
                self.feed = msgs;
                self.cursor = self.visible().len().saturating_sub(1);
            }
            Incoming::History(..) => {}
            Incoming::Offline(why) => self.link = Link::Offline(why),
            Incoming::Unauthorized => self.link = Link::Unauthorized,
            Incoming::Notice(n) => self.notice = n,
        }
        out
    }

    fn select(&mut self, id: String) -> Vec<Request> {
        self.selected = Some(id.clone());
        self.feed.clear();
        self.held.clear();
        self.cursor = 0;
        vec![Request::Follow(id)]
    }

    /// Handle a key; returns what to ask the network side.
    pub fn key(&mut self, k: Key) -> Vec<Request> {
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Help => Vec::new(),
            Mode::ConfirmClear => match (k, self.selected.clone()) {
                (Key::Char('y'), Some(ch)) => {
                    self.notice = format!("clearing {ch}…");
                    vec![Request::Clear(ch)]
                }
                _ => {
                    self.notice = "not cleared".into();
                    Vec::new()
                }
            },
            Mode::Compose(mut text) => match k {
                Key::Esc => Vec::new(),
                Key::Enter if !text.is_empty() => match self.selected.clone() {
                    Some(channel) => vec![Request::Send {
                        channel,
                        sender: self.sender.clone(),
                        content: text,
                    }],
                    None => {
                        self.notice = "pick or create a channel first (n)".into();
                        Vec::new()
                    }
                },
                Key::Backspace => {
                    text.pop();
                    self.mode = Mode::Compose(text);
                    Vec::new()
                }
                Key::Char(c) => {
                    text.push(c);
                    self.mode = Mode::Compose(text);
                    Vec::new()
                }
                _ => {
                    self.mode = Mode::Compose(text);
                    Vec::new()
                }
            },
            Mode::Filter(mut text) => {
                match k {
                    Key::Esc => self.filter.clear(),
                    Key::Enter => {}
                    Key::Backspace => {
                        text.pop();
                        self.mode = Mode::Filter(text.clone());
                    }
                    Key::Char(c) => {
                        text.push(c);
                        self.mode = Mode::Filter(text.clone());
                    }
                    _ => self.mode = Mode::Filter(text.clone()),
                }
                if k != Key::Esc {
                    self.filter = text;
                }
                self.cursor = self.visible().len().saturating_sub(1);
                Vec::new()
            }
            Mode::NewChannel(mut text) => match k {
                Key::Esc => Vec::new(),
                Key::Enter if !text.trim().is_empty() => {
                    self.mode = Mode::Compose(String::new());
                    self.select(text.trim().to_owned())
                }
                Key::Backspace => {
                    text.pop();
                    self.mode = Mode::NewChannel(text);
                    Vec::new()
                }
                Key::Char(c) => {
                    text.push(c);
                    self.mode = Mode::NewChannel(text);
                    Vec::new()
                }
                _ => {
                    self.mode = Mode::NewChannel(text);
                    Vec::new()
                }
            },
            Mode::Normal => self.normal_key(k),
        }
    }

    fn normal_key(&mut self, k: Key) -> Vec<Request> {
        match k {
            Key::Char('q') => self.quit = true,
            Key::Char('?') => self.mode = Mode::Help,
            Key::Char('s') => self.mode = Mode::Compose(String::new()),
            Key::Char('/') => self.mode = Mode::Filter(self.filter.clone()),
            Key::Char('n') => self.mode = Mode::NewChannel(String::new()),
            Key::Char('c') if self.selected.is_some() => self.mode = Mode::ConfirmClear,
            Key::Char('i') | Key::Enter if self.focus == Focus::Feed => {
                self.inspector = !self.inspector
            }
            Key::Char('i') => self.inspector = !self.inspector,
            Key::Char('p') => {
                self.paused = !self.paused;
                if !self.paused {
                    let held = std::mem::take(&mut self.held);
                    for m in held {
                        if !self.feed.iter().any(|x| x.id == m.id) {
                            self.feed.push(m);
                        }
                    }
                    self.cursor = self.visible().len().saturating_sub(1);
                }
            }
            Key::Char('r') => return vec![Request::Refresh],
            Key::Tab => {
                self.focus = match self.focus {
                    Focus::Channels => Focus::Feed,
                    Focus::Feed => Focus::Channels,
                }
            }
            Key::Up | Key::Char('k') => return self.step(-1),
            Key::Down | Key::Char('j') => return self.step(1),
            _ => {}
        }
        Vec::new()
    }

    fn step(&mut self, d: i64) -> Vec<Request> {
        match self.focus {
            Focus::Feed => {
                let n = self.visible().len();
                if n > 0 {
                    let c = (self.cursor as i64 + d).clamp(0, n as i64 - 1);
                    self.cursor = c as usize;
                }
                Vec::new()
            }
            Focus::Channels => {
                if self.channels.is_empty() {
                    return Vec::new();
                }
                let at = self
                    .selected
                    .as_ref()
                    .and_then(|s| self.channels.iter().position(|c| &c.id == s))
                    .unwrap_or(0) as i64;
                let next = (at + d).clamp(0, self.channels.len() as i64 - 1) as usize;
                let id = self.channels[next].id.clone();
                if Some(&id) == self.selected.as_ref() {
                    return Vec::new();
                }
                self.select(id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(id: &str, sender: &str, content: &str) -> Message {
        Message {
            id: id.into(),
            seq: 1,
            sender: sender.into(),
            time: "2026-11-24T00:00:00.000000Z".into(),
            content: content.into(),
        }
    }

    fn state() -> Incoming {
        Incoming::State(
            json!({"uptime_human":"00:01:00","total_messages":3,"channels":[
            {"id":"web:main","count":1,"last_ts_full":"t"},
            {"id":"api:jobs","count":1,"last_ts_full":"t"},
            {"id":"plain","count":1,"last_ts_full":"t"},
            {"id":"api:logs","count":0,"last_ts_full":"t"}]}),
        )
    }

    #[test]
    fn channels_are_grouped_by_prefix_and_the_first_is_followed() {
        let mut a = App::new("http://x:1", "me");
        let asked = a.apply(state());
        assert_eq!(a.link, Link::Online);
        assert_eq!(asked, vec![Request::Follow("api:jobs".into())]);
        let groups: Vec<(String, Vec<String>)> = a
            .groups()
            .into_iter()
            .map(|(g, l)| (g, l.iter().map(|c| c.id.clone()).collect()))
            .collect();
        assert_eq!(
            groups,
            vec![
                ("".into(), vec!["plain".into()]),
                ("api".into(), vec!["api:jobs".into(), "api:logs".into()]),
                ("web".into(), vec!["web:main".into()]),
            ]
        );
    }

    #[test]
    fn filter_is_a_case_insensitive_substring_of_sender_or_content() {
        let mut a = App::new("u", "me");
        a.selected = Some("c".into());
        a.apply(Incoming::History(
            "c".into(),
            vec![
                msg("1", "Alice", "Build OK"),
                msg("2", "bob", "deploy failed"),
            ],
        ));
        for k in "/ALI".chars() {
            a.key(Key::Char(k));
        }
        assert_eq!(a.visible().len(), 1);
        a.key(Key::Enter);
        assert_eq!(a.filter, "ALI");
        a.key(Key::Char('/'));
        for _ in 0..3 {
            a.key(Key::Backspace);
        }
        a.key(Key::Char('F'));
        a.key(Key::Char('A'));
        assert_eq!(a.visible()[0].id, "2", "content matches too");
        a.key(Key::Esc);
        assert_eq!(a.visible().len(), 2, "Esc drops the filter");
    }

    #[test]
    fn colour_follows_the_name_and_type_comes_from_json() {
        assert_eq!(colour_of("agent-a"), colour_of("agent-a"));
        assert!(colour_of("x") < COLOURS);
        let names: std::collections::HashSet<usize> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .map(|n| colour_of(n))
            .collect();
        assert!(names.len() > 2, "names spread over colours");
        assert_eq!(
            msg("1", "s", r#"{"type":"status","ok":1}"#)
                .kind()
                .as_deref(),
            Some("status")
        );
        assert_eq!(msg("1", "s", "plain text").kind(), None);
        assert_eq!(msg("1", "s", "[1,2]").kind(), None);
        assert_eq!(msg("1", "s", r#"{"a":1}"#).pretty(), "{\n  \"a\": 1\n}");
    }

    #[test]
    fn the_relay_stream_moves_channels_and_the_roster() {
        let mut a = App::new("u", "me");
        let out = a.apply(Incoming::Channel(serde_json::json!({"channel": "p:new",
            "count": 1, "last_ts_full": "t1", "created": true})));
        assert_eq!(
            out,
            vec![Request::Follow("p:new".into())],
            "the first is followed"
        );
        a.apply(Incoming::Channel(
            serde_json::json!({"channel": "a:b", "count": 2, "last_ts_full": "t2"}),
        ));
        a.apply(Incoming::Channel(
            serde_json::json!({"channel": "p:new", "count": 3, "last_ts_full": "t3"}),
        ));
        let ids: Vec<&str> = a.channels.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a:b", "p:new"]);
        assert_eq!(a.total, 5);
        a.apply(Incoming::ChannelGone("a:b".into()));
        assert_eq!((a.channels.len(), a.total), (1, 3));
        a.apply(Incoming::Roster(serde_json::json!({"roster": [
            {"name": "zed", "online": false, "last_seen": "t", "card": {}},
            {"name": "amy", "online": true, "card": {"machine": "m", "directory": "/d", "task": "x"}}]})));
        assert_eq!(a.roster[0].name, "amy");
        assert_eq!(a.roster[0].card, "m · /d · x");
        a.apply(Incoming::Presence(
            serde_json::json!({"name": "zed", "online": true, "card": {"repo": "r"}}),
        ));
        assert!(a.roster[1].online && a.roster[1].card == "r");
        a.apply(Incoming::Presence(
            serde_json::json!({"name": "amy", "online": false, "removed": true}),
        ));
        assert_eq!(a.roster.len(), 1);
        assert_eq!(
            (plural(1, "message"), plural(2, "channel")),
            ("1 message".into(), "2 channels".into())
        );
    }

    #[test]
    fn live_events_pausing_clearing_and_keys() {
        let mut a = App::new("u", "me");
        a.apply(state());
        let ch = a.selected.clone().unwrap();
        a.apply(Incoming::History(ch.clone(), vec![msg("1", "s", "one")]));
        a.apply(Incoming::Message(ch.clone(), msg("2", "s", "two")));
        a.apply(Incoming::Message(ch.clone(), msg("2", "s", "two")));
        a.apply(Incoming::Message(
            "other".into(),
            msg("3", "s", "elsewhere"),
        ));
        assert_eq!(a.feed.len(), 2, "duplicates and other channels are ignored");
        a.key(Key::Char('p'));
        a.apply(Incoming::Message(ch.clone(), msg("4", "s", "held")));
        assert_eq!(a.feed.len(), 2);
        a.key(Key::Char('p'));
        assert_eq!(a.feed.len(), 3, "resuming shows what was held");
        // Compose and send.
        a.key(Key::Char('s'));
        for c in "hi".chars() {
            a.key(Key::Char(c));
        }
        assert_eq!(
            a.key(Key::Enter),
            vec![Request::Send {
                channel: ch.clone(),
                sender: "me".into(),
                content: "hi".into()
            }]
        );
        assert_eq!(a.mode, Mode::Normal);
        // Clear needs a yes.
        a.key(Key::Char('c'));
        assert_eq!(a.key(Key::Char('n')), vec![]);
        a.key(Key::Char('c'));
        assert_eq!(a.key(Key::Char('y')), vec![Request::Clear(ch.clone())]);
        // The counts follow the relay-wide stream, so a clear asks for nothing.
        assert_eq!(a.apply(Incoming::Cleared(ch.clone())), vec![]);
        assert!(a.feed.is_empty());
        // New channel, help, inspector, focus, moving between channels, quit.
        a.key(Key::Char('n'));
        for c in "new:one".chars() {
            a.key(Key::Char(c));
        }
        assert_eq!(a.key(Key::Enter), vec![Request::Follow("new:one".into())]);
        assert!(
            matches!(a.mode, Mode::Compose(_)),
            "then compose its first message"
        );
        a.key(Key::Esc);
        a.key(Key::Char('?'));
        assert_eq!(a.mode, Mode::Help);
        a.key(Key::Esc);
        a.key(Key::Char('i'));
        assert!(a.inspector);
        a.selected = Some("api:jobs".into());
        assert_eq!(a.key(Key::Down), vec![Request::Follow("api:logs".into())]);
        a.key(Key::Tab);
        assert_eq!(a.focus, Focus::Feed);
        a.apply(Incoming::Offline("refused".into()));
        assert_eq!(a.link, Link::Offline("refused".into()));
        a.key(Key::Char('q'));
        assert!(a.quit);
    }
}
