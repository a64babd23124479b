//! The playout buffer under loss, reordering, duplication and lateness:
//! every 20 ms slot is filled (decoded, rebuilt from FEC, or concealed),
//! order is restored, and every count is exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::f32::consts::TAU;

use bytes::Bytes;
use voice_audio::{FRAME_LEN, Heard, Hearing};
use voice_driver::{ReceivedAudio, Snowflake};

const USER: Snowflake = Snowflake(7);

/// 200 frames of a 440 Hz tone, encoded as a voice client does (mono,
/// 24 kbit/s) with in-band FEC (LBRR) on.
fn packets() -> Vec<Bytes> {
    let mut enc = ropus::Encoder::builder(48_000, ropus::Channels::Mono, ropus::Application::Voip)
        .bitrate(ropus::Bitrate::Bits(24_000))
        .signal(ropus::Signal::Voice)
        .inband_fec(ropus::InbandFec::Enabled)
        .packet_loss_perc(20)
        .build()
        .unwrap();
    let mut out = vec![0u8; 1500];
    (0..200)
        .map(|f| {
            let frame: Vec<f32> =
                (0..960).map(|i| 0.4 * (TAU * 440.0 * (f * 960 + i) as f32 / 48_000.0).sin()).collect();
            let n = enc.encode_float(&frame, &mut out).unwrap();
            Bytes::copy_from_slice(&out[..n])
        })
        .collect()
}

fn has_lbrr(p: &[u8]) -> bool {
    ropus::opus::decoder::opus_packet_has_lbrr(p, p.len() as i32).unwrap()
}

fn packet(seq: u16, opus: &Bytes) -> ReceivedAudio {
    ReceivedAudio { user_id: USER, ssrc: 1, sequence: seq, timestamp: u32::from(seq) * 960, opus: opus.clone() }
}

#[test]
fn gaps_are_filled_order_restored_and_every_count_is_exact() {
    let p = packets();
    // Sequence numbers run across the 16-bit wrap.
    let seq = |i: usize| 65_500u16.wrapping_add(i as u16);
    // An isolated loss whose next packet carries LBRR data, and a burst.
    let isolated = (5..60).find(|&i| has_lbrr(&p[i + 1])).expect("a packet with LBRR data");
    let dropped = [isolated, 100, 101, 102];
    let mut h = Hearing::new(3);
    let mut audio = Vec::new();
    let mut opus = Vec::new();
    let mut events = Vec::new();
    for step in 0..215 {
        let mut arriving: Vec<usize> = match step {
            80 => vec![81, 80],
            81 => vec![],
            120 => vec![],
            s if s < 200 => vec![s],
            _ => vec![],
        };
        if step == 70 {
            arriving.push(70);
        }
        if step == 125 {
            // 120 comes five slots late: its turn has passed.
            arriving.push(120);
        }
        for i in arriving.into_iter().filter(|i| !dropped.contains(i)) {
            h.push(&packet(seq(i), &p[i]));
        }
        for e in h.tick() {
            match e {
                Heard::Audio(_, f) => audio.push(f),
                Heard::Opus(_, o) => opus.push(o),
                other => events.push(other),
            }
        }
    }
    let s = h.stats(USER).unwrap();
    // Missing at play time: the four dropped and the late one. FEC rebuilds
    // a missing frame when the next packet carries LBRR data.
    let missing = [isolated, 100, 101, 102, 120];
    let fec = missing.iter().filter(|&&i| !missing.contains(&(i + 1)) && has_lbrr(&p[i + 1])).count() as u64;
    assert!(fec >= 1);
    assert_eq!(s.packets, 200 - 4 + 1, "all but the dropped, plus one duplicate");
    assert_eq!((s.duplicates, s.late, s.overflow, s.decode_errors), (1, 1, 0, 0));
    assert_eq!(s.decoded, 195);
    assert_eq!(s.recovered_fec, fec);
    assert_eq!(s.concealed, 5 - fec);
    assert_eq!(audio.len(), 200, "every slot filled, none twice");
    // The Opus behind each slot, in play order: the packet, or none where
    // it was missing.
    assert_eq!(opus.len(), 200);
    for (i, o) in opus.iter().enumerate() {
        let expect = (!missing.contains(&i)).then(|| p[i].clone());
        assert_eq!(o, &expect, "slot {i}");
    }
    assert_eq!(events, vec![Heard::Started(USER), Heard::Stopped(USER)]);

    // The tone comes through, gaps and all.
    let left: Vec<f32> = audio[10..190].iter().flat_map(|f| f.chunks_exact(2).map(|s| s[0])).collect();
    let level = common::level(&left, 440.0);
    assert!((level - 0.4).abs() < 0.1, "440 Hz at {level}");
    assert_eq!(audio[0].len(), FRAME_LEN);
}

#[test]
fn a_pause_ends_the_talk_spurt_and_the_next_one_starts_fresh() {
    let p = packets();
    let mut h = Hearing::new(2);
    let mut events = Vec::new();
    let mut frames = 0;
    for step in 0..100u16 {
        // Two spurts of 30 frames, a second apart; sequence goes on.
        if step < 30 || (80..).contains(&step) {
            h.push(&packet(step, &p[usize::from(step)]));
        }
        for e in h.tick() {
            match e {
                Heard::Audio(..) => frames += 1,
                Heard::Opus(..) => {}
                other => events.push(other),
            }
        }
    }
    for _ in 0..10 {
        for e in h.tick() {
            match e {
                Heard::Audio(..) => frames += 1,
                Heard::Opus(..) => {}
                other => events.push(other),
            }
        }
    }
    assert_eq!(events, vec![Heard::Started(USER), Heard::Stopped(USER), Heard::Started(USER), Heard::Stopped(USER)]);
    assert_eq!(frames, 50, "the pause is not concealed");
    let s = h.stats(USER).unwrap();
    assert_eq!((s.decoded, s.concealed, s.late), (50, 0, 0));
}

#[test]
fn recordings_line_up_per_user_and_mixed() {
    use voice_audio::{AudioFile, Recording};
    let dir = std::env::temp_dir().join(format!("voice-audio-rec-{}", std::process::id()));
    let (a, b) = (Snowflake(1), Snowflake(2));
    let tone = |freq: f32, tick: usize| {
        let mut f = Box::new([0f32; FRAME_LEN]);
        for (i, s) in f.chunks_exact_mut(2).enumerate() {
            let v = 0.3 * (TAU * freq * (tick * 960 + i) as f32 / 48_000.0).sin();
            s[0] = v;
            s[1] = v;
        }
        f
    };
    let mut rec = Recording::create(&dir).unwrap();
    for tick in 0..50 {
        let mut heard = vec![Heard::Audio(a, tone(440.0, tick))];
        if (20..40).contains(&tick) {
            heard.push(Heard::Audio(b, tone(1000.0, tick)));
        }
        rec.add(&heard).unwrap();
    }
    let paths = rec.finish().unwrap();
    assert_eq!(paths.len(), 3);
    let frames = |name: &str| {
        let mut f = AudioFile::open(dir.join(name)).unwrap();
        let mut frame = [0f32; FRAME_LEN];
        let mut all = Vec::new();
        while f.next_frame(&mut frame).unwrap() {
            all.push(frame);
        }
        all
    };
    let (mix, fa, fb) = (frames("mix.wav"), frames("1.wav"), frames("2.wav"));
    assert_eq!((mix.len(), fa.len(), fb.len()), (50, 50, 50), "one timeline");
    assert!(fb[..20].iter().chain(&fb[40..]).all(|f| f.iter().all(|&s| s == 0.0)), "silent outside its turn");
    assert!(fb[25].iter().any(|&s| s.abs() > 0.1));
    // The mix is the sum.
    for (m, (x, y)) in mix[30].iter().zip(fa[30].iter().zip(fb[30].iter())) {
        assert!((m - (x + y)).abs() < 2.0 / 32767.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The packets of an Ogg Opus file after its two headers, each with the
/// granule position of the page it ends on.
fn ogg_packets(path: &std::path::Path) -> Vec<(Vec<u8>, u64)> {
    let mut r = ogg::PacketReader::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    while let Some(p) = r.read_packet().unwrap() {
        out.push((p.data.clone(), p.absgp_page()));
    }
    assert!(out[0].0.starts_with(b"OpusHead") && out[1].0.starts_with(b"OpusTags"));
    out.split_off(2)
}

#[test]
fn ogg_opus_recordings_keep_the_packets_and_count_every_gap() {
    use voice_audio::{AudioFile, RecordFormat, Recording};
    let dir = std::env::temp_dir().join(format!("voice-audio-ogg-{}", std::process::id()));
    let p = packets();
    let (a, b) = (USER, Snowflake(8));
    let mut h = Hearing::new(3);
    let mut rec = Recording::create_with(&dir, RecordFormat::OggOpus).unwrap();
    const TICKS: usize = 260;
    // A speaks from the start, loses 60 and 61, pauses from 120 to 160;
    // B joins at 80 and speaks to 140.
    let a_sends = |i: usize| i < 200 && !(120..160).contains(&i) && i != 60 && i != 61;
    for tick in 0..TICKS {
        if a_sends(tick) {
            h.push(&packet(tick as u16, &p[tick]));
        }
        if (80..140).contains(&tick) {
            h.push(&ReceivedAudio { user_id: b, ..packet((tick - 80) as u16, &p[tick - 80]) });
        }
        rec.add(&h.tick()).unwrap();
    }
    let paths = rec.finish().unwrap();
    assert_eq!(paths.len(), 3);
    assert_eq!(paths[0], dir.join("mix.opus"));

    for (user, name) in [(a, "7.opus"), (b, "8.opus"), (a, "mix.opus")] {
        let packets = ogg_packets(&dir.join(name));
        assert_eq!(packets.len(), TICKS, "{name}: a packet per 20 ms of the timeline");
        assert_eq!(packets.last().unwrap().1, (TICKS * 960) as u64, "{name}: the last granule counts every slot");
        let mut last = 0;
        for (_, g) in &packets {
            assert!(*g >= last && g % 960 == 0, "{name}: granules rise by whole packets");
            last = *g;
        }
        if name == "mix.opus" || user != a {
            continue;
        }
        // A's slots: its packets in order, the two lost ones as zero-length
        // frames, silence before its delay and through its pause.
        let data: Vec<&[u8]> = packets.iter().map(|(d, _)| d.as_slice()).collect();
        let start = data.iter().position(|d| d.len() > 3).unwrap();
        assert_eq!(start, 2, "playout starts once three frames are buffered");
        assert_eq!(data.len(), TICKS);
        for (slot, got) in data.iter().enumerate() {
            let i = slot.wrapping_sub(start);
            let expect: Vec<u8> = if slot < start || i >= 200 || (120..160).contains(&i) {
                voice_driver::OPUS_SILENCE.to_vec()
            } else if i == 60 || i == 61 {
                vec![p[59][0] & !3]
            } else {
                p[i].to_vec()
            };
            assert_eq!(*got, expect.as_slice(), "slot {slot}");
        }
    }
    // B's file starts with the recording: silence until it joined.
    let b_packets = ogg_packets(&dir.join("8.opus"));
    assert!(b_packets[..80].iter().all(|(d, _)| d.as_slice() == voice_driver::OPUS_SILENCE));
    assert!(b_packets[85..135].iter().all(|(d, _)| d.len() > 3));

    // The files decode: the tone is there while A speaks.
    for name in ["7.opus", "mix.opus"] {
        let mut f = AudioFile::open(dir.join(name)).unwrap();
        let mut frame = [0f32; FRAME_LEN];
        let mut left = Vec::new();
        let mut frames = 0;
        while f.next_frame(&mut frame).unwrap() {
            if (10..50).contains(&frames) {
                left.extend(frame.chunks_exact(2).map(|s| s[0]));
            }
            frames += 1;
        }
        assert!((TICKS - 1..=TICKS).contains(&frames), "{name}: {frames} frames");
        let level = common::level(&left, 440.0);
        assert!((level - 0.4).abs() < 0.12, "{name}: 440 Hz at {level}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
