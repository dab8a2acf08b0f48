//! Db files written by the original (0.7.3 and 1.3.0, copied into `tests/fixtures/`) open, migrate
//! forward in place with nothing lost, and keep working: checked against their manifests.

use crate::support::{Relay, TempDir};
use rusqlite::Connection;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copy a fixture (and its -wal/-shm) into a fresh dir; never open the committed file in place.
fn copy_fixture(name: &str) -> (Arc<TempDir>, PathBuf) {
    let dir = Arc::new(TempDir::new());
    let db = dir.path().join("bridge.db");
    for suffix in ["", "-wal", "-shm"] {
        let src = fixtures().join(format!("{name}{suffix}"));
        if src.exists() {
            std::fs::copy(&src, dir.path().join(format!("bridge.db{suffix}"))).unwrap();
        }
    }
    (dir, db)
}

type Row = (i64, String, String, String, String, String);

fn rows(db: &Path, sql: &str) -> Vec<Vec<Value>> {
    let c = Connection::open(db).unwrap();
    let mut stmt = c.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        (0..n)
            .map(|i| {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(x) => json!(x),
                    rusqlite::types::ValueRef::Real(x) => json!(x),
                    rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                    rusqlite::types::ValueRef::Blob(b) => json!(b),
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn messages(db: &Path) -> Vec<Row> {
    let c = Connection::open(db).unwrap();
    let mut stmt = c
        .prepare("SELECT seq, id, channel, sender, content, timestamp FROM messages ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn render(ts: &str) -> String {
    if ts.len() == 20 && ts.ends_with('Z') {
        format!("{}.000000Z", &ts[..19])
    } else {
        ts.to_string()
    }
}

fn start_on(dir: &Arc<TempDir>, db: &Path) -> Relay {
    Relay::start_raw(
        &[
            "--port".into(),
            "0".into(),
            "--db".into(),
            db.display().to_string(),
        ],
        &[],
        Arc::clone(dir),
        db.to_path_buf(),
    )
}

fn check_fixture(name: &str, manifest: &str) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join(manifest)).unwrap()).unwrap();
    let (dir, db) = copy_fixture(name);
    let before = messages(&db);
    assert!(!before.is_empty());
    let side_tables = [
        "tasks",
        "bridge_consumer_cursors",
        "bridge_idempotency",
        "audit",
    ];
    let side_before: Vec<Vec<Vec<Value>>> = side_tables
        .iter()
        .map(|t| {
            let exists = !rows(
                &db,
                &format!("SELECT name FROM sqlite_master WHERE name = '{t}'"),
            )
            .is_empty();
            if exists {
                rows(&db, &format!("SELECT * FROM {t} ORDER BY 1"))
            } else {
                Vec::new()
            }
        })
        .collect();
    let old_max: i64 = rows(
        &db,
        "SELECT seq FROM sqlite_sequence WHERE name = 'messages'",
    )[0][0]
        .as_i64()
        .unwrap();

    let r = start_on(&dir, &db);
    // Every message the original wrote is served with the same bytes.
    let sent = manifest["sent"].as_array().unwrap();
    for (seq, id, channel, sender, content, ts) in &before {
        let d = r.get(&format!("/api/messages/{id}"));
        assert_eq!(d.status, 200, "{id}");
        let d = d.json();
        assert_eq!(d["seq"], *seq);
        assert_eq!(d["channel"], *channel);
        assert_eq!(d["sender"], *sender);
        assert_eq!(d["content"], *content);
        assert_eq!(d["ts"], render(ts));
        if let Some(m) = sent.iter().find(|m| m["id"] == *id) {
            assert_eq!(m["seq"], *seq, "manifest seq of {id}");
            assert_eq!(m["channel"], *channel);
            assert_eq!(render(m["ts"].as_str().unwrap()), render(ts));
        }
        let listed = r
            .get(&format!(
                "/api/messages?channel={}&full=true&limit=500",
                urlencode(channel)
            ))
            .json();
        assert!(listed["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == *id && m["content"] == *content));
    }
    // Sent messages that are no longer in the file were cleared by the original.
    for m in sent {
        let id = m["id"].as_str().unwrap();
        if !before.iter().any(|row| row.1 == id) {
            assert_eq!(r.get(&format!("/api/messages/{id}")).status, 404);
        }
    }
    // /api/state matches the original's final state.
    let state = r.get("/api/state").json();
    let want = &manifest["state"];
    assert_eq!(state["total_messages"], want["total_messages"]);
    let ours = state["channels"].as_array().unwrap();
    let theirs = want["channels"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        for k in ["id", "group", "name", "count", "senders", "last_ts"] {
            assert_eq!(o[k], t[k], "{k} of {}", t["id"]);
        }
        assert_eq!(
            o["last_ts_full"].as_str().unwrap(),
            render(t["last_ts_full"].as_str().unwrap())
        );
    }
    // New messages go above every old seq, cleared ones included.
    let fresh = r.say("demo:orchestrator", "rust", "after migration");
    assert!(fresh["seq"].as_i64().unwrap() > old_max);
    drop(r);

    // Nothing else changed; the schema is the 1.3 layout with both components.
    let after = messages(&db);
    assert_eq!(&after[..before.len()], &before[..]);
    for (t, was) in side_tables.iter().zip(&side_before) {
        if !was.is_empty() {
            let now = rows(&db, &format!("SELECT * FROM {t} ORDER BY 1"));
            let want = if *t == "tasks" {
                leases_expired(was, &now)
            } else {
                was.clone()
            };
            assert_eq!(&now, &want, "{t}");
        }
    }
    let comps = rows(
        &db,
        "SELECT component, version FROM bridge_schema_components ORDER BY 1",
    );
    assert_eq!(
        comps,
        vec![
            vec![json!("reliability"), json!(1)],
            vec![json!("taskqueue"), json!(1)]
        ]
    );
    assert_eq!(rows(&db, "PRAGMA user_version"), vec![vec![json!(0)]]);
    for table in [
        "messages",
        "audit",
        "bridge_events",
        "bridge_idempotency",
        "bridge_consumer_cursors",
        "tasks",
    ] {
        assert_eq!(
            rows(
                &db,
                &format!("SELECT 1 FROM sqlite_master WHERE type='table' AND name='{table}'")
            )
            .len(),
            1,
            "{table}"
        );
    }

    // A second start (migration is idempotent) still serves everything.
    let r = start_on(&dir, &db);
    assert_eq!(
        r.get("/api/state").json()["total_messages"],
        want["total_messages"].as_i64().unwrap() + 1
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn original_0_7_3_db_migrates_forward() {
    check_fixture("original-0.7.3.db", "manifest-0.7.3.json");
}

/// `tasks` rows as the start-up housekeeping sweep leaves them (`storage.md` §6, `mcp.md` §5.2):
/// a claim whose lease has lapsed goes back to `pending` (or `dead` on its last attempt) with the
/// lease fields cleared, taking `updated_at` from `after`; every other row is unchanged.
fn leases_expired(before: &[Vec<Value>], after: &[Vec<Value>]) -> Vec<Vec<Value>> {
    // Columns: 4 status, 6 attempts, 7 max_attempts, 9-11 lease, 13 last_error, 17 updated_at.
    let now = claude_bridge::clock::now();
    before
        .iter()
        .zip(after)
        .map(|(row, later)| {
            let lapsed = row[4] == "claimed" && row[11].as_str().is_some_and(|e| e <= now.as_str());
            if !lapsed {
                return row.clone();
            }
            let mut r = row.clone();
            let spent = r[6].as_i64() >= r[7].as_i64();
            r[4] = Value::from(if spent { "dead" } else { "pending" });
            r[9] = Value::Null;
            r[10] = Value::Null;
            r[11] = Value::Null;
            if spent {
                r[13] = later[13].clone();
            }
            r[17] = later[17].clone();
            r
        })
        .collect()
}

#[test]
fn original_1_3_0_db_migrates_forward() {
    check_fixture("original-1.3.0.db", "manifest-1.3.0.json");
}

#[test]
fn legacy_channel_names_stay_readable_and_clearable() {
    let (dir, db) = copy_fixture("original-0.7.3.db");
    {
        let c = Connection::open(&db).unwrap();
        c.execute(
            "INSERT INTO messages (id, channel, sender, content, timestamp) VALUES ('legacy-1', ' bad channel', 's', ?1, '2026-05-28T10:00:02Z')",
            ["a\u{0}b"],
        )
        .unwrap();
    }
    let r = start_on(&dir, &db);
    let l = r.get("/api/messages?channel=%20bad%20channel&full=1");
    assert_eq!(l.status, 200, "{}", l.text());
    assert_eq!(l.json()["messages"][0]["ts"], "2026-05-28T10:00:02.000000Z");
    assert_eq!(l.json()["messages"][0]["content"], "a\u{0}b");
    let s = r.get("/api/state").json();
    assert!(s["channels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == " bad channel"));
    // Sending to it is still refused: the rules apply to new messages.
    let x = r.post(
        "/api/send",
        &json!({"channel": " bad channel", "sender": "s", "content": "x"}),
    );
    assert_eq!(x.status, 400);
    // A name nobody has is refused as usual.
    assert_eq!(r.get("/api/messages?channel=%20other").status, 400);
    let c = r.post("/api/clear", &json!({"channel": " bad channel"}));
    assert_eq!(c.json(), json!({"channel": " bad channel", "cleared": 1}));
}

#[test]
fn a_db_from_a_newer_version_is_refused() {
    let (dir, db) = copy_fixture("original-1.3.0.db");
    Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE bridge_schema_components SET version = 2 WHERE component = 'taskqueue'",
            [],
        )
        .unwrap();
    let o = crate::support::run(
        &["--port", "0", "--db", &db.display().to_string()],
        &[],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("taskqueue") && err.contains("newer"), "{err}");
}

#[test]
fn other_processes_changes_show_in_state() {
    // Another writer on the same file (here: plain SQLite, as the original or a --stdio
    // process would be) is picked up by /api/state without a restart.
    let r = Relay::start(&[], &[]);
    r.say("a", "s", "1");
    r.say("b", "s", "1");
    let c = Connection::open(&r.db).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c.execute("INSERT INTO messages (id, channel, sender, content, timestamp) VALUES ('x1', 'a', 'other', 'hi', '2026-01-01T00:00:00.000000Z')", []).unwrap();
    let s = r.get("/api/state").json();
    assert_eq!(s["total_messages"], 3);
    assert_eq!(s["channels"][0]["senders"], json!(["other", "s"]));
    // A clear by another process (with its event row) and a deletion without one.
    c.execute("DELETE FROM messages WHERE channel = 'b'", [])
        .unwrap();
    c.execute("INSERT INTO bridge_events (event_type, channel, message_id, source_instance, payload, timestamp) VALUES ('clear', 'b', NULL, 'x', '{}', 't')", []).unwrap();
    let s = r.get("/api/state").json();
    assert_eq!(s["total_messages"], 2);
    assert_eq!(s["channels"].as_array().unwrap().len(), 1);
    c.execute("DELETE FROM messages WHERE sender = 's'", [])
        .unwrap();
    let s = r.get("/api/state").json();
    assert_eq!(s["total_messages"], 1);
    assert_eq!(s["channels"][0]["senders"], json!(["other"]));
}
