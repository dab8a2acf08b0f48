//! `claude-bridge tui`: a terminal companion to the dashboard (cargo feature `tui`). It talks to
//! any relay over the JSON API and the channel event stream ([`crate::client`]); `state` holds
//! the screen as pure data with a reducer, `net` the network threads, `ui` the drawing.

pub mod net;
pub mod state;
pub mod ui;

use crate::client::Target;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use crossterm::ExecutableCommand;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use state::{App, Incoming, Key};
use std::time::Duration;

/// Run the UI until `q`; restores the terminal however it ends.
pub fn run(url: &str, sender: &str, token: Option<String>) -> Result<(), String> {
    let target = Target::parse(url)?;
    let (to_ui, from_net) = std::sync::mpsc::channel::<Incoming>();
    let requests = net::start(target, token, to_ui);
    let mut app = App::new(url, sender);

    enable_raw_mode().map_err(|e| format!("cannot use the terminal: {e}"))?;
    let mut out = std::io::stdout();
    if let Err(e) = out.execute(EnterAlternateScreen) {
        let _ = disable_raw_mode();
        return Err(format!("cannot use the terminal: {e}"));
    }
    // Restore the terminal on panic too.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = disable_raw_mode();
        let _ = std::io::stdout().execute(LeaveAlternateScreen);
        hook(info);
    }));
    let result = (|| -> Result<(), String> {
        let mut term =
            Terminal::new(CrosstermBackend::new(std::io::stdout())).map_err(|e| e.to_string())?;
        while !app.quit {
            while let Ok(ev) = from_net.try_recv() {
                for r in app.apply(ev) {
                    let _ = requests.send(r);
                }
            }
            term.draw(|f| ui::draw(f, &app))
                .map_err(|e| e.to_string())?;
            if event::poll(Duration::from_millis(100)).map_err(|e| e.to_string())? {
                if let Event::Key(k) = event::read().map_err(|e| e.to_string())? {
                    if k.kind != KeyEventKind::Press {
                        continue;
                    }
                    if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
                        break;
                    }
                    let key = match k.code {
                        KeyCode::Char(c) => Key::Char(c),
                        KeyCode::Enter => Key::Enter,
                        KeyCode::Esc => Key::Esc,
                        KeyCode::Backspace => Key::Backspace,
                        KeyCode::Tab => Key::Tab,
                        KeyCode::Up => Key::Up,
                        KeyCode::Down => Key::Down,
                        _ => continue,
                    };
                    app.notice.clear();
                    for r in app.key(key) {
                        let _ = requests.send(r);
                    }
                }
            }
        }
        Ok(())
    })();
    let _ = disable_raw_mode();
    let _ = std::io::stdout().execute(LeaveAlternateScreen);
    result
}
