//! Drawing the terminal UI's state with ratatui.

use super::state::{colour_of, plural, App, Focus, Link, Mode};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

const PALETTE: [Color; super::state::COLOURS] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::Blue,
    Color::LightRed,
];

fn colour(name: &str) -> Color {
    PALETTE[colour_of(name)]
}

/// Draw everything.
pub fn draw(f: &mut Frame<'_>, app: &App) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .split(f.area());
    top_bar(f, rows[0], app);
    let cols = if app.inspector {
        Layout::default()
            .direction(Direction::Horizontal)
            .constraints([
                Constraint::Length(26),
                Constraint::Min(20),
                Constraint::Percentage(35),
            ])
            .split(rows[1])
    } else {
        Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Length(26), Constraint::Min(20)])
            .split(rows[1])
    };
    sidebar(f, cols[0], app);
    feed(f, cols[1], app);
    if app.inspector {
        inspector(f, cols[2], app);
    }
    bottom_bar(f, rows[2], app);
    match &app.mode {
        Mode::Help => popup(f, "keys (any key closes)", HELP),
        Mode::Compose(text) => popup(
            f,
            &format!(
                "message to {} as {} (Enter sends, Esc cancels)",
                app.selected.as_deref().unwrap_or("?"),
                app.sender
            ),
            &format!("{text}▏"),
        ),
        Mode::NewChannel(text) => {
            popup(f, "new channel (project:role), Enter", &format!("{text}▏"))
        }
        Mode::ConfirmClear => popup(
            f,
            "clear channel",
            &format!(
                "Delete every message in {}? y = yes, any other key = no",
                app.selected.as_deref().unwrap_or("?")
            ),
        ),
        _ => {}
    }
}

const HELP: &str = "s send   / filter   n new channel   c clear (asks)   i inspector\n\
p pause/resume feed   r refresh   Tab switch panel   ↑↓ / j k move\n\
? help   q quit";

fn top_bar(f: &mut Frame<'_>, area: Rect, app: &App) {
    let (text, style) = match &app.link {
        Link::Online => (
            " online ".to_owned(),
            Style::default().bg(Color::Green).fg(Color::Black),
        ),
        Link::Connecting => (
            " connecting ".into(),
            Style::default().bg(Color::Yellow).fg(Color::Black),
        ),
        Link::Offline(why) => (
            format!(" offline: {why} — retrying "),
            Style::default().bg(Color::Red).fg(Color::White),
        ),
        Link::Unauthorized => (
            " token refused or missing (--token / CLAUDE_BRIDGE_AUTH_TOKEN) ".into(),
            Style::default().bg(Color::Red).fg(Color::White),
        ),
    };
    let line = Line::from(vec![
        Span::styled(
            " claude-bridge ",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::styled(text, style),
        Span::raw(format!(
            "  {}  up {}  {}  {}",
            app.url,
            app.uptime,
            plural(app.channels.len() as u64, "channel"),
            plural(app.total, "message")
        )),
    ]);
    f.render_widget(Paragraph::new(line), area);
}

fn border(title: &str, focused: bool) -> Block<'_> {
    let style = if focused {
        Style::default().fg(Color::Cyan)
    } else {
        Style::default().fg(Color::DarkGray)
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(style)
        .title(title.to_owned())
}

fn sidebar(f: &mut Frame<'_>, area: Rect, app: &App) {
    // The roster on top (at most a third of the height), the channels below.
    let roster_rows = (app.roster.len().max(1) as u16 + 2)
        .min(area.height / 3)
        .max(3);
    let parts = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(roster_rows), Constraint::Min(3)])
        .split(area);
    roster(f, parts[0], app);
    channels(f, parts[1], app);
}

fn roster(f: &mut Frame<'_>, area: Rect, app: &App) {
    let items: Vec<ListItem<'_>> = if app.roster.is_empty() {
        vec![ListItem::new(Span::styled(
            "nobody seen yet",
            Style::default().fg(Color::DarkGray),
        ))]
    } else {
        app.roster
            .iter()
            .map(|m| {
                let (dot, style) = if m.online {
                    ("● ", Style::default().fg(Color::Green))
                } else {
                    ("○ ", Style::default().fg(Color::DarkGray))
                };
                let detail = if !m.card.is_empty() {
                    m.card.clone()
                } else if m.online {
                    "online".into()
                } else {
                    m.last_seen.as_deref().map_or("never seen".into(), |t| {
                        format!("seen {}", crate::clock::hms(t))
                    })
                };
                ListItem::new(Line::from(vec![
                    Span::styled(dot, style),
                    Span::styled(
                        m.name.clone(),
                        Style::default()
                            .fg(colour(&m.name))
                            .add_modifier(Modifier::BOLD),
                    ),
                    Span::styled(format!(" {detail}"), Style::default().fg(Color::DarkGray)),
                ]))
            })
            .collect()
    };
    f.render_widget(List::new(items).block(border("agents", false)), area);
}

fn channels(f: &mut Frame<'_>, area: Rect, app: &App) {
    let mut items = Vec::new();
    let mut selected_row = None;
    for (group, list) in app.groups() {
        let title = if group.is_empty() {
            "(no project)".to_owned()
        } else {
            group.clone()
        };
        items.push(ListItem::new(Span::styled(
            title,
            Style::default()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::BOLD),
        )));
        for c in list {
            let name = c.id.split_once(':').map_or(c.id.as_str(), |(_, n)| n);
            if Some(&c.id) == app.selected.as_ref() {
                selected_row = Some(items.len());
            }
            items.push(ListItem::new(format!(" {name} ({})", c.count)));
        }
    }
    let mut st = ListState::default();
    st.select(selected_row);
    let list = List::new(items)
        .block(border("channels", app.focus == Focus::Channels))
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    f.render_stateful_widget(list, area, &mut st);
}

fn feed(f: &mut Frame<'_>, area: Rect, app: &App) {
    let visible = app.visible();
    let items: Vec<ListItem<'_>> = visible
        .iter()
        .map(|m| {
            let mut spans = vec![
                Span::styled(format!("#{} ", m.seq), Style::default().fg(Color::DarkGray)),
                Span::styled(
                    m.sender.clone(),
                    Style::default()
                        .fg(colour(&m.sender))
                        .add_modifier(Modifier::BOLD),
                ),
                Span::styled(
                    format!(" {} ", crate::clock::hms(&m.time)),
                    Style::default().fg(Color::DarkGray),
                ),
            ];
            if let Some(kind) = m.kind() {
                spans.push(Span::styled(
                    format!("[{kind}] "),
                    Style::default().fg(colour(&kind)),
                ));
            }
            spans.push(Span::raw(m.content.replace('\n', " ")));
            ListItem::new(Line::from(spans))
        })
        .collect();
    let mut title = app.selected.clone().unwrap_or_else(|| "no channel".into());
    if !app.filter.is_empty() {
        title.push_str(&format!(" — filter: {}", app.filter));
    }
    if app.paused {
        title.push_str(&format!(" — PAUSED ({} held)", app.held.len()));
    }
    let mut st = ListState::default();
    if !visible.is_empty() {
        st.select(Some(app.cursor.min(visible.len() - 1)));
    }
    let list = List::new(items)
        .block(border(&title, app.focus == Focus::Feed))
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    f.render_stateful_widget(list, area, &mut st);
}

fn inspector(f: &mut Frame<'_>, area: Rect, app: &App) {
    let text = match app.current() {
        Some(m) => format!(
            "id      {}\nseq     {}\nsender  {}\ntime    {}\nsize    {} bytes\n\n{}",
            m.id,
            m.seq,
            m.sender,
            m.time,
            m.content.len(),
            m.pretty()
        ),
        None => "no message".into(),
    };
    f.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .block(border("inspector", false)),
        area,
    );
}

fn bottom_bar(f: &mut Frame<'_>, area: Rect, app: &App) {
    let hint = "s send  / filter  n new  c clear  i inspect  p pause  ? help  q quit";
    let text = if app.notice.is_empty() {
        hint.to_owned()
    } else {
        format!("{}  |  {hint}", app.notice)
    };
    f.render_widget(
        Paragraph::new(text).style(Style::default().fg(Color::DarkGray)),
        area,
    );
}

fn popup(f: &mut Frame<'_>, title: &str, body: &str) {
    let a = f.area();
    let w = a.width.saturating_sub(8).min(90);
    let h = 7.min(a.height);
    let area = Rect::new(a.x + (a.width - w) / 2, a.y + (a.height - h) / 2, w, h);
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(body.to_owned())
            .wrap(Wrap { trim: false })
            .block(border(title, true)),
        area,
    );
}
