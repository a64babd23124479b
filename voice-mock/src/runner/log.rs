//! The `--log` file: one JSON object per line for every frame received and
//! sent, every close and event, and every 5 s per-client RTP counts with
//! each room's DAVE state (epoch, roster, transitions, payload kinds).
//! Tokens in Identify and Resume are replaced by `"<redacted>"`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use voice_proto::wire::{Snowflake, WsFrame};

use crate::{ConnId, DaveRoomInfo, ServerEvent, ServerStats};

/// How often RTP counts are written.
pub(crate) const COUNTS_EVERY: Duration = Duration::from_secs(5);

pub(crate) struct Log {
    w: BufWriter<File>,
    start: Instant,
    pub(crate) next_counts: Instant,
}

fn frame_json(frame: &WsFrame) -> Value {
    match frame {
        WsFrame::Text(t) => match serde_json::from_str::<Value>(t) {
            Ok(mut v) => {
                if let Some(tok) = v.get_mut("d").and_then(|d| d.get_mut("token")) {
                    *tok = Value::String("<redacted>".into());
                }
                v
            }
            Err(_) => json!({ "unparsed_len": t.len() }),
        },
        WsFrame::Binary(b) => {
            let hex: String = b.iter().take(256).map(|x| format!("{x:02x}")).collect();
            json!({ "binary_hex": hex, "len": b.len() })
        }
        other => json!({ "len": other.len() }),
    }
}

impl Log {
    pub(crate) fn create(path: &Path, now: Instant) -> std::io::Result<Log> {
        Ok(Log { w: BufWriter::new(File::create(path)?), start: now, next_counts: now + COUNTS_EVERY })
    }

    fn line(&mut self, now: Instant, mut v: Value) {
        if let Value::Object(m) = &mut v {
            m.insert("t".into(), json!(now.saturating_duration_since(self.start).as_secs_f64()));
        }
        let _ = writeln!(self.w, "{v}");
    }

    pub(crate) fn frame(&mut self, now: Instant, dir: &str, conn: ConnId, user: Option<Snowflake>, f: &WsFrame) {
        let user = user.map(|u| u.to_string());
        self.line(now, json!({ "dir": dir, "conn": conn.0, "user": user, "frame": frame_json(f) }));
    }

    pub(crate) fn close(&mut self, now: Instant, conn: ConnId, code: u16) {
        self.line(now, json!({ "dir": "out", "conn": conn.0, "close": code }));
    }

    /// A websocket dropped without a close frame.
    pub(crate) fn cut(&mut self, now: Instant, conn: ConnId) {
        self.line(now, json!({ "dir": "out", "conn": conn.0, "cut": true }));
    }

    pub(crate) fn event(&mut self, now: Instant, e: &ServerEvent) {
        self.line(now, json!({ "event": format!("{e:?}") }));
    }

    pub(crate) fn counts(&mut self, now: Instant, stats: &ServerStats, rooms: &[DaveRoomInfo]) {
        let users: serde_json::Map<String, Value> = stats
            .users
            .iter()
            .map(|(u, s)| {
                let v = json!({
                    "rtp_in": s.rtp_in,
                    "rtp_out": s.rtp_out,
                    "rtp_out_dropped": s.rtp_out_dropped,
                    "rtcp_in": s.rtcp_in,
                    "keepalives": s.keepalives,
                    "decrypt_failures": s.decrypt_failures,
                });
                (u.to_string(), v)
            })
            .collect();
        let dave: Vec<Value> = rooms
            .iter()
            .map(|r| {
                json!({
                    "guild": r.guild.to_string(),
                    "channel": r.channel.to_string(),
                    "protocol_version": r.protocol_version,
                    "epoch": r.epoch,
                    "roster": r.roster.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
                    "pending": r.pending.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
                    "transitions_executed": r.transitions_executed,
                    "transitions_timed_out": r.transitions_timed_out,
                    "commits_accepted": r.commits_accepted,
                    "commits_rejected": r.commits_rejected,
                    "payloads_with_trailer": r.payloads_with_trailer,
                    "payloads_silence": r.payloads_silence,
                    "payloads_plaintext": r.payloads_plaintext,
                })
            })
            .collect();
        self.line(now, json!({ "rtp_counts": users, "dave_rooms": dave }));
        self.next_counts = now + COUNTS_EVERY;
        let _ = self.w.flush();
    }

    pub(crate) fn flush(&mut self) {
        let _ = self.w.flush();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_line_shows_each_rooms_dave_state() {
        let path = std::env::temp_dir().join(format!("voice-mock-log-{}.jsonl", std::process::id()));
        let now = Instant::now();
        let mut log = Log::create(&path, now).unwrap();
        let room = DaveRoomInfo {
            guild: Snowflake(1),
            channel: Snowflake(2),
            protocol_version: 1,
            epoch: 3,
            roster: vec![Snowflake(10), Snowflake(11)],
            transitions_executed: 3,
            transitions_timed_out: 1,
            payloads_with_trailer: 7,
            payloads_silence: 2,
            ..DaveRoomInfo::default()
        };
        log.counts(now, &ServerStats::default(), &[room]);
        let line: Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
        let _ = std::fs::remove_file(&path);
        let r = &line["dave_rooms"][0];
        assert_eq!((r["channel"].as_str(), r["epoch"].as_u64()), (Some("2"), Some(3)));
        assert_eq!(r["roster"], json!(["10", "11"]));
        assert_eq!((r["transitions_executed"].as_u64(), r["transitions_timed_out"].as_u64()), (Some(3), Some(1)));
        assert_eq!((r["payloads_with_trailer"].as_u64(), r["payloads_plaintext"].as_u64()), (Some(7), Some(0)));
    }
}
