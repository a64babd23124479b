//! The audio hot path allocates nothing: after the session is established,
//! `send_opus` and `handle_datagram` run on caller buffers only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
// A counting global allocator needs `unsafe impl GlobalAlloc`; it only
// forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use voice_proto::wire::{Snowflake, Token, WsMessage};
use voice_proto::{Config, Datagram, GatewayEvent, Output, VoiceConnection, VoiceServerUpdate, VoiceStateUpdate};
use voice_rtp::{Cipher, Mode, RtpHeader, Sealer, SecretKey};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn drain(conn: &mut VoiceConnection) -> Vec<Output> {
    let mut v = Vec::new();
    loop {
        match conn.poll_output() {
            Output::Timeout { .. } => return v,
            o => v.push(o),
        }
    }
}

#[test]
fn send_and_receive_allocate_nothing_in_steady_state() {
    let mut now = Instant::now();
    let server: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let (guild, me, other) = (Snowflake(1), Snowflake(2), Snowflake(3));
    let mut conn = VoiceConnection::new(Config::new(guild, me), now);
    conn.join(Snowflake(9), now);
    conn.handle_gateway_event(
        GatewayEvent::VoiceStateUpdate(VoiceStateUpdate { guild_id: Some(guild), channel_id: Some(Snowflake(9)), user_id: me, session_id: "s".into() }),
        now,
    );
    conn.handle_gateway_event(
        GatewayEvent::VoiceServerUpdate(VoiceServerUpdate { guild_id: guild, token: Token::new("t"), endpoint: Some("v.example:443".into()) }),
        now,
    );
    drain(&mut conn);
    conn.handle_ws_open(now);
    let key: Vec<String> = (1..=32).map(|i| i.to_string()).collect();
    for text in [
        r#"{"op":8,"d":{"heartbeat_interval":13750}}"#.to_string(),
        r#"{"op":2,"d":{"ssrc":1,"ip":"127.0.0.1","port":50000,"modes":["aead_aes256_gcm_rtpsize"]}}"#.to_string(),
    ] {
        conn.handle_ws_message(WsMessage::Text(&text), now).unwrap();
    }
    let mut reply = voice_rtp::discovery::response(1, "203.0.113.9", 4000).unwrap();
    conn.handle_datagram(server, &mut reply, now).unwrap();
    let sd = format!(r#"{{"op":4,"d":{{"mode":"aead_aes256_gcm_rtpsize","secret_key":[{}],"dave_protocol_version":0}}}}"#, key.join(","));
    conn.handle_ws_message(WsMessage::Text(&sd), now).unwrap();
    conn.handle_ws_message(WsMessage::Text(r#"{"op":5,"d":{"user_id":"3","ssrc":5,"speaking":1}}"#), now).unwrap();
    assert!(conn.is_ready());

    // The other user's sender, sealing with the same session key.
    let key_bytes: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
    let mut remote = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &SecretKey::new(key_bytes)), 7);
    let opus = [0xFCu8; 120];
    let mut out = Vec::with_capacity(1500);
    let mut incoming = vec![0u8; 1500];
    // The first frame announces Speaking (a websocket message): not steady state.
    conn.send_opus(&opus, now, &mut out).unwrap();
    drain(&mut conn);

    let mut received = 0;
    COUNTING.with(|c| c.set(true));
    for i in 0..1000u32 {
        now += Duration::from_millis(20);
        let t = conn.send_opus(&opus, now, &mut out).unwrap();
        assert_eq!(t.len, 12 + 120 + 20);
        let mut header = [0u8; 12];
        RtpHeader::write_basic(&mut header, i as u16, i * 960, 5);
        incoming[..12].copy_from_slice(&header);
        incoming[12..132].copy_from_slice(&opus);
        let n = remote.seal_in_place(&mut incoming, 132).unwrap();
        if let Ok(Datagram::Voice(p)) = conn.handle_datagram(server, &mut incoming[..n], now) {
            assert_eq!((p.user_id, p.opus.len()), (other, 120));
            received += 1;
        }
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(received, 1000);
    assert_eq!(ALLOCATIONS.with(Cell::get), 0, "the hot path allocated");
    assert_eq!(conn.stats().packets_sent, 1001);
}
