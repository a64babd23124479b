//! Misuse of the connection's API is its own error kind, apart from errors
//! about what came from the network; and the silence trailer keeps the
//! audio's 20 ms clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use voice_proto::fuzzing::{drain, established};
use voice_proto::wire::{WireError, WsMessage};
use voice_proto::{DatagramError, Event, Misuse, Output, SendError, WsError};

#[test]
fn a_message_from_a_socket_told_to_close_is_misuse_and_bad_bytes_are_not() {
    let now = Instant::now();
    let mut e = established(now);
    let bad = e.conn.handle_ws_message(WsMessage::Text("not json"), now).unwrap_err();
    assert!(matches!(bad, WsError::Wire(WireError::Malformed { .. })), "{bad:?}");
    e.conn.handle_ws_close(Some(4015), now);
    let outputs = drain(&mut e.conn);
    assert!(outputs.iter().any(|o| matches!(o, Output::ConnectWs(_))), "a resume is under way: {outputs:?}");
    // The old socket was dropped and no new one is open yet.
    let hello = r#"{"op":8,"d":{"heartbeat_interval":13750}}"#;
    assert_eq!(e.conn.handle_ws_message(WsMessage::Text(hello), now), Err(WsError::Misuse(Misuse::WsNotOpen)));
}

#[test]
fn every_input_after_close_is_misuse_and_changes_nothing() {
    let now = Instant::now();
    let mut e = established(now);
    e.conn.close(now);
    // Close leaves: the trailer does not run (nothing was playing), op 4, Closed.
    let outputs = drain(&mut e.conn);
    assert!(outputs.contains(&Output::Event(Event::Closed)), "{outputs:?}");
    let later = now + Duration::from_secs(1);
    let mut out = Vec::new();
    assert_eq!(e.conn.send_opus(&[0xFC; 20], later, &mut out), Err(SendError::Misuse(Misuse::Closed)));
    let mut datagram = [0x80u8, 0x78, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    assert_eq!(e.conn.handle_datagram(e.server, &mut datagram, later), Err(DatagramError::Misuse(Misuse::Closed)));
    assert_eq!(e.conn.handle_ws_message(WsMessage::Text("{}"), later), Err(WsError::Misuse(Misuse::Closed)));
    assert!(drain(&mut e.conn).is_empty(), "nothing more happens");
    assert!(e.conn.is_closed());
}

#[test]
fn the_silence_trailer_follows_the_last_frame_on_its_20_ms_clock() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut e = established(t0);
    let mut out = Vec::new();
    for i in 0..3 {
        e.conn.send_opus(&[0xFC; 40], ms(20 * i), &mut out).unwrap();
    }
    drain(&mut e.conn);
    // Stopped 3 ms after the last frame (at 40 ms): nothing goes out at
    // once, the first silence frame waits for the 60 ms slot.
    e.conn.stop_speaking(ms(43));
    assert!(!drain(&mut e.conn).iter().any(|o| matches!(o, Output::Transmit { .. })), "no frame 3 ms after the last");
    let mut sent = Vec::new();
    let mut now = ms(43);
    for _ in 0..50 {
        let Output::Timeout { at: Some(at), .. } = e.conn.poll_output() else { break };
        // A driver 4 ms late on every deadline.
        now = at.max(now) + Duration::from_millis(4);
        if now > ms(400) {
            break;
        }
        e.conn.handle_timeout(now);
        for o in drain(&mut e.conn) {
            if let Output::Transmit { bytes, .. } = o
                && bytes.len() > 12
                && bytes[1] == 0x78
            {
                sent.push(now.duration_since(t0).as_millis());
            }
        }
    }
    // Due at 60, 80, 100, 120, 140: each handled 4 ms late, none drifting.
    assert_eq!(sent, [64, 84, 104, 124, 144]);
    assert_eq!(e.conn.stats().silence_frames_sent, 5);
}
