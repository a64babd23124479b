//! The whole connection's per-packet cost against the bare voice-rtp calls
//! it wraps: `send_opus` vs header + `Sealer::seal`, `handle_datagram` vs
//! `Cipher::open`, on 120-byte Opus frames (AES-256-GCM); and the same
//! connection with DAVE end-to-end encryption on (`connection+dave`), in
//! the same run, so the cost of DAVE reads as a ratio.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use voice_proto::fuzzing::established;
use voice_rtp::{Cipher, Mode, RtpHeader, Sealer, SecretKey};

fn hot_path(c: &mut Criterion) {
    let now = Instant::now();
    let mut est = established(now);
    let key = SecretKey::new(est.key);
    let opus = [0xFCu8; 120];
    let mut out = Vec::with_capacity(1500);
    // Past the first frame, which announces Speaking.
    est.conn.send_opus(&opus, now, &mut out).unwrap();
    while !matches!(est.conn.poll_output(), voice_proto::Output::Timeout { .. }) {}

    let mut pair = voice_tests::dave::DavePair::new(3);
    let mut g = c.benchmark_group("send/120");
    g.bench_function("connection", |b| {
        b.iter(|| black_box(est.conn.send_opus(black_box(&opus), now, &mut out).unwrap()))
    });
    g.bench_function("connection+dave", |b| {
        let conn = &mut pair.sim.clients[0].conn;
        b.iter(|| black_box(conn.send_opus(black_box(&opus), now, &mut out).unwrap()))
    });
    let mut sealer = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &key), 1);
    let mut seq = 0u16;
    g.bench_function("bare", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            out.clear();
            let mut h = [0u8; 12];
            RtpHeader::write_basic(&mut h, seq, u32::from(seq) * 960, 1);
            out.extend_from_slice(&h);
            out.extend_from_slice(black_box(&opus));
            sealer.seal(&mut out).unwrap();
            black_box(out.len())
        })
    });
    g.finish();

    let mut remote = Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &key), 9);
    let mut packet = Vec::with_capacity(1500);
    let mut h = [0u8; 12];
    RtpHeader::write_basic(&mut h, 7, 960 * 7, 5);
    packet.extend_from_slice(&h);
    packet.extend_from_slice(&opus);
    remote.seal(&mut packet).unwrap();
    let mut buf = packet.clone();
    let cipher = Cipher::new(Mode::Aes256GcmRtpSize, &key);
    let server = est.server;

    let mut g = c.benchmark_group("receive/120");
    g.bench_function("connection", |b| {
        b.iter(|| {
            buf.copy_from_slice(&packet);
            black_box(matches!(est.conn.handle_datagram(server, &mut buf, now), Ok(voice_proto::Datagram::Voice(_))))
        })
    });
    g.bench_function("connection+dave", |b| {
        // Every DAVE frame decrypts once (replays are refused), so fresh
        // ones are made outside the timed part, a thousand at a time.
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1000);
                let mut batch: Vec<Vec<u8>> = (0..n).map(|_| pair.forwarded(&opus)).collect();
                let (server, now) = (pair.sim.server_addr, pair.sim.now);
                let conn = &mut pair.sim.clients[0].conn;
                let start = Instant::now();
                for p in &mut batch {
                    black_box(matches!(conn.handle_datagram(server, p, now), Ok(voice_proto::Datagram::Voice(_))));
                }
                spent += start.elapsed();
                left -= n;
            }
            spent
        })
    });
    g.bench_function("bare", |b| {
        b.iter(|| {
            buf.copy_from_slice(&packet);
            black_box(cipher.open(&mut buf).unwrap().payload.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2)).sample_size(30);
    targets = hot_path
}
criterion_main!(benches);
