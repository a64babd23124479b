//! The audio hot path allocates nothing: after the session is established,
//! `send_opus` and `handle_datagram` run on caller buffers only, with DAVE
//! end-to-end encryption on as well as off.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
// A counting global allocator needs `unsafe impl GlobalAlloc`; it only
// forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use voice_proto::Datagram;
use voice_proto::fuzzing::{Established, established};
use voice_proto::wire::Snowflake;
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

#[test]
fn send_and_receive_allocate_nothing_in_steady_state() {
    let mut now = Instant::now();
    let Established { mut conn, server, key, .. } = established(now);
    assert!(conn.is_ready());
    let other = Snowflake(3);

    // The other user's sender, sealing with the same session key.
    let mut remote = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &SecretKey::new(key)), 7);
    let opus = [0xFCu8; 120];
    let mut out = Vec::with_capacity(1500);
    let mut incoming = vec![0u8; 1500];
    // The first frame announces Speaking (a websocket message): not steady state.
    conn.send_opus(&opus, now, &mut out).unwrap();
    while !matches!(conn.poll_output(), voice_proto::Output::Timeout { .. }) {}

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

#[test]
fn with_dave_on_send_and_receive_allocate_nothing_in_steady_state() {
    let mut pair = voice_tests::dave::DavePair::new(7);
    let opus = [0xFCu8; 120];
    let mut out = Vec::with_capacity(1500);
    // Warm up: davey's frame processors and decryptor state come into
    // being on first use, and its frame parser reserves exactly the largest
    // frame seen so far, so the first frame past nonce 127 (a trailer one
    // byte longer) grows it once. Steady state starts after that.
    for _ in 0..200 {
        let now = pair.sim.now;
        pair.sim.clients[0].conn.send_opus(&opus, now, &mut out).unwrap();
        let mut packet = pair.forwarded(&opus);
        let server = pair.sim.server_addr;
        assert!(matches!(pair.sim.clients[0].conn.handle_datagram(server, &mut packet, now), Ok(Datagram::Voice(_))));
    }
    while !matches!(pair.sim.clients[0].conn.poll_output(), voice_proto::Output::Timeout { .. }) {}

    let mut received = 0;
    for _ in 0..1000 {
        pair.sim.now += Duration::from_millis(20);
        let (now, server) = (pair.sim.now, pair.sim.server_addr);
        // Client 1 and the server are outside the count: only client 0's
        // hot path is measured.
        let mut packet = pair.forwarded(&opus);
        let conn = &mut pair.sim.clients[0].conn;
        COUNTING.with(|c| c.set(true));
        let t = conn.send_opus(&opus, now, &mut out).unwrap();
        let got = matches!(conn.handle_datagram(server, &mut packet, now), Ok(Datagram::Voice(p)) if p.opus == opus);
        COUNTING.with(|c| c.set(false));
        assert!(t.len > 12 + 120 + 12, "DAVE adds its trailer");
        received += usize::from(got);
    }
    assert_eq!(received, 1000);
    assert_eq!(ALLOCATIONS.with(Cell::get), 0, "the DAVE hot path allocated");
    assert!(pair.sim.clients[0].conn.stats().dave.frames_encrypted >= 1010);
}
