//! The voice-mock server core fuzzed (`arbitrary`-structured input): three
//! honest clients ([`VoiceConnection`](voice_proto::VoiceConnection)s in a
//! [`Sim`]) join, talk, leave and break their sockets, while the input
//! also speaks to the server as a bad peer would: arbitrary and
//! well-formed-but-out-of-order frames on the clients' sockets, DAVE
//! binary frames with arbitrary MLS, sockets that are accepted and never
//! identify, datagrams from clients' addresses and from strangers, server
//! faults and loss. After every step: the server's tables stay within its
//! limits, no RTP counted before a session, and each client keeps the
//! invariants of the property tests (no dropped output, no voice before its
//! session's description, no nonce twice under one key).

use std::net::SocketAddr;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use voice_mock::{ConnId, Fault};
use voice_proto::wire::{GatewayVersion, WsFrame, WsMessage};

use crate::sim::{CHANNEL, Sim};

/// Well-formed client messages, sent whenever the input likes.
#[derive(Arbitrary, Debug)]
enum ClientMsg {
    Identify {
        user: u8,
        session: u8,
        token: u8,
        dave: u8,
    },
    SelectProtocol {
        port: u16,
        mode: u8,
    },
    Resume {
        session: u8,
        seq: i16,
    },
    Heartbeat {
        nonce: u64,
        seq: Option<i16>,
    },
    Speaking {
        flags: u8,
        ssrc: u32,
    },
    DaveReady {
        transition: u16,
    },
    DaveInvalidCommit {
        transition: u16,
    },
    /// Binary: key package (26), commit or welcome (28, 29 as sent by
    /// clients: `[op][body]`), with an arbitrary MLS body.
    DaveBinary {
        op: u8,
        body: Vec<u8>,
    },
}

fn client_msg(m: &ClientMsg) -> WsFrame {
    const MODES: [&str; 3] = ["aead_aes256_gcm_rtpsize", "aead_xchacha20_poly1305_rtpsize", "nonsense"];
    let text = match m {
        ClientMsg::Identify { user, session, token, dave } => format!(
            r#"{{"op":0,"d":{{"server_id":"{}","user_id":"{}","session_id":"s{session}","token":"t{token}","max_dave_protocol_version":{}}}}}"#,
            crate::sim::GUILD.0,
            [111, 222, 333, 7][usize::from(user % 4)],
            dave % 2
        ),
        ClientMsg::SelectProtocol { port, mode } => format!(
            r#"{{"op":1,"d":{{"protocol":"udp","data":{{"address":"198.51.100.9","port":{port},"mode":"{}"}}}}}}"#,
            MODES[usize::from(mode % 3)]
        ),
        ClientMsg::Resume { session, seq } => format!(
            r#"{{"op":7,"d":{{"server_id":"{}","session_id":"s{session}","token":"t","seq_ack":{seq}}}}}"#,
            crate::sim::GUILD.0
        ),
        ClientMsg::Heartbeat { nonce, seq } => match seq {
            Some(s) => format!(r#"{{"op":3,"d":{{"t":{nonce},"seq_ack":{s}}}}}"#),
            None => format!(r#"{{"op":3,"d":{nonce}}}"#),
        },
        ClientMsg::Speaking { flags, ssrc } => {
            format!(r#"{{"op":5,"d":{{"speaking":{flags},"delay":0,"ssrc":{ssrc}}}}}"#)
        }
        ClientMsg::DaveReady { transition } => format!(r#"{{"op":23,"d":{{"transition_id":{transition}}}}}"#),
        ClientMsg::DaveInvalidCommit { transition } => {
            format!(r#"{{"op":31,"d":{{"transition_id":{transition}}}}}"#)
        }
        ClientMsg::DaveBinary { op, body } => {
            let mut frame = vec![[26u8, 28, 29][usize::from(op % 3)]];
            frame.extend_from_slice(body);
            return WsFrame::Binary(frame);
        }
    };
    WsFrame::Text(text)
}

#[derive(Arbitrary, Debug)]
enum Op {
    Join {
        client: u8,
    },
    Leave {
        client: u8,
    },
    BreakWs {
        client: u8,
    },
    Frames {
        client: u8,
        n: u8,
    },
    Run {
        ms: u16,
    },
    Text {
        client: u8,
        text: String,
    },
    Binary {
        client: u8,
        bytes: Vec<u8>,
    },
    Message {
        client: u8,
        msg: ClientMsg,
    },
    Datagram {
        client: u8,
        bytes: Vec<u8>,
    },
    Stranger {
        port: u16,
        bytes: Vec<u8>,
    },
    /// A socket accepted and never identified; it may say one thing.
    Lurker {
        text: Option<String>,
    },
    LurkerGone,
    Close {
        client: u8,
        code: u16,
    },
    StopAcks {
        client: u8,
    },
    ResumeAcks,
    Loss {
        percent: u8,
    },
}

/// Runs the operations decoded from `data`.
pub fn server(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let seed = u.arbitrary::<u64>().unwrap_or(0);
    let mut sim = Sim::default_server(seed);
    for user in [111, 222, 333] {
        sim.add_client(user, |c| c.seed ^= seed);
    }
    let limits = sim.server.config().limits.clone();
    let mut lurkers: Vec<ConnId> = Vec::new();
    let pick = |c: u8| usize::from(c % 3);
    for _ in 0..200 {
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        let now = sim.now;
        match op {
            Op::Join { client } => sim.join(pick(client), CHANNEL),
            Op::Leave { client } => sim.leave(pick(client)),
            Op::BreakWs { client } => sim.break_ws(pick(client)),
            Op::Frames { client, n } => sim.clients[pick(client)].queue_frames(usize::from(n % 50), now),
            Op::Run { ms } => sim.run_for(Duration::from_millis(u64::from(ms % 5000))),
            Op::Text { client, text } => {
                if let Some(conn) = sim.clients[pick(client)].ws {
                    sim.server.handle_ws_message(conn, WsMessage::Text(&text), now);
                }
            }
            Op::Binary { client, bytes } => {
                if let Some(conn) = sim.clients[pick(client)].ws {
                    sim.server.handle_ws_message(conn, WsMessage::Binary(&bytes), now);
                }
            }
            Op::Message { client, msg } => {
                if let Some(conn) = sim.clients[pick(client)].ws {
                    sim.server.handle_ws_message(conn, client_msg(&msg).as_message(), now);
                }
            }
            Op::Datagram { client, bytes } => {
                let from = sim.clients[pick(client)].addr;
                sim.server.handle_datagram(from, &bytes, now);
            }
            Op::Stranger { port, bytes } => {
                sim.server.handle_datagram(SocketAddr::from(([203, 0, 113, 7], port)), &bytes, now);
            }
            Op::Lurker { text } => {
                if lurkers.len() < 64 {
                    let conn = sim.server.accept(GatewayVersion::V8, now);
                    if let Some(t) = text {
                        sim.server.handle_ws_message(conn, WsMessage::Text(&t), now);
                    }
                    lurkers.push(conn);
                }
            }
            Op::LurkerGone => {
                if let Some(conn) = lurkers.pop() {
                    sim.server.handle_ws_close(conn, None, now);
                }
            }
            Op::Close { client, code } => {
                let user = sim.clients[pick(client)].user;
                sim.inject(Fault::CloseUser { user, code: 4000 + code % 30, after: None });
            }
            Op::StopAcks { client } => {
                let user = sim.clients[pick(client)].user;
                sim.inject(Fault::StopHeartbeatAcks { user: Some(user) });
            }
            Op::ResumeAcks => sim.inject(Fault::ResumeHeartbeatAcks { user: None }),
            Op::Loss { percent } => sim.up.link.loss = f64::from(percent % 101) / 100.0,
        }
        sim.drain_all();
        let stats = sim.server.stats();
        assert!(stats.conns <= limits.max_conns, "{} connections", stats.conns);
        assert!(stats.sessions <= limits.max_sessions, "{} sessions", stats.sessions);
        assert_eq!(stats.rtp_before_session, 0, "RTP counted before a session");
        for i in 0..sim.clients.len() {
            crate::sim::check_client_invariants(&sim, i);
            assert!(sim.server.received_frames(sim.clients[i].user).len() <= limits.received_frames);
        }
    }
}
