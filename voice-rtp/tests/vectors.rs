//! The fixed vectors of PROTOCOL.md §9.1–9.4 and the recorded discord.js
//! vectors in `testdata/vectors/`: IP discovery and transport records
//! reproduced byte for byte in both directions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{hx, key_9_4, synthetic_opus, transport_records};
use voice_rtp::discovery::{self, Discovery};
use voice_rtp::{Cipher, DatagramKind, Error, Mode, OPUS_SILENCE, RtpHeader, RtpPacket, Sealer, SecretKey, classify};

const HEADER_9_3: &str = "80 78 00 01 00 00 03 C0 00 00 00 01";

/// The four sealed packets of §9.4: (mode, counter, datagram).
const SEALED_9_4: [(Mode, u32, &str); 4] = [
    (
        Mode::Aes256GcmRtpSize,
        0,
        "80 78 00 01 00 00 03 C0 00 00 00 01  F6 43 4B  BA 2E 3E 4F BB D5 66 47 C0 40 55 DB 56 63 4C DA  00 00 00 00",
    ),
    (
        Mode::Aes256GcmRtpSize,
        1,
        "80 78 00 01 00 00 03 C0 00 00 00 01  BC C9 33  EA 22 57 38 C0 B4 7C 08 C2 8F 33 76 B2 DF 59 6A  00 00 00 01",
    ),
    (
        Mode::XChaCha20Poly1305RtpSize,
        0,
        "80 78 00 01 00 00 03 C0 00 00 00 01  6D F9 72  0D 7F 55 A9 45 D7 40 57 96 75 B3 27 41 31 F1 D1  00 00 00 00",
    ),
    (
        Mode::XChaCha20Poly1305RtpSize,
        1,
        "80 78 00 01 00 00 03 C0 00 00 00 01  F1 58 AF  E8 D7 60 43 94 16 91 35 BC 9A 2B 12 77 49 5F 7A  00 00 00 01",
    ),
];

const EXTENSION_9_4: &str = "90 78 00 01 00 00 03 C0 00 00 00 01 BE DE 00 01  1E E9 B5 DE 4D D3 7D  E4 90 92 C5 43 78 F7 92 D8 0C E6 1E E5 99 C5 20  00 00 00 00";

#[test]
fn discovery_request_9_1() {
    let mut expected = hx("00 01 00 46 00 00 00 01");
    expected.resize(74, 0);
    assert_eq!(discovery::request(1).as_slice(), expected.as_slice());
    let d = Discovery::parse(&expected).unwrap();
    assert_eq!((d.kind, d.ssrc, d.address, d.port), (discovery::REQUEST_TYPE, 1, "", 0));
    assert_eq!(classify(&expected), DatagramKind::DiscoveryRequest);
    assert!(Discovery::parse_response(&expected).is_err());
}

#[test]
fn discovery_response_9_2() {
    let mut expected = hx("00 02 00 46 00 00 00 01 32 30 33 2E 30 2E 31 31 33 2E 37 00");
    expected.resize(72, 0);
    expected.extend_from_slice(&hx("C3 50"));
    assert_eq!(expected.len(), 74);
    let built = discovery::response(1, "203.0.113.7", 50000).unwrap();
    assert_eq!(built.as_slice(), expected.as_slice());
    let d = Discovery::parse_response(&expected).unwrap();
    assert_eq!((d.ssrc, d.address, d.port), (1, "203.0.113.7", 50000));
    assert_eq!(d.ip(), Some("203.0.113.7".parse().unwrap()));
    assert_eq!(classify(&expected), DatagramKind::DiscoveryResponse);
}

#[test]
fn rtp_header_9_3() {
    let mut h = [0u8; 12];
    RtpHeader::write_basic(&mut h, 1, 960, 1);
    assert_eq!(h.as_slice(), hx(HEADER_9_3).as_slice());

    let mut out = Vec::new();
    let hdr = RtpHeader { payload_type: 120, sequence: 1, timestamp: 960, ssrc: 1, ..Default::default() };
    assert_eq!(hdr.write(&[], &mut out).unwrap(), 12);
    assert_eq!(out, hx(HEADER_9_3));

    let p = RtpPacket::new(&h).unwrap();
    assert_eq!((p.version(), p.marker(), p.payload_type(), p.sequence()), (2, false, 120, 1));
    assert_eq!((p.timestamp(), p.ssrc(), p.csrc_count()), (960, 1, 0));
    assert_eq!(classify(&h), DatagramKind::Rtp);
}

fn packet_9_3_silence() -> Vec<u8> {
    let mut p = hx(HEADER_9_3);
    p.extend_from_slice(&OPUS_SILENCE);
    p
}

#[test]
fn transport_9_4_sealer() {
    let key = SecretKey::new(key_9_4());
    for (mode, counter, expected) in SEALED_9_4 {
        let expected = hx(expected);
        assert_eq!(expected.len(), 35);
        let mut sealer = Sealer::new(Cipher::new(mode, &key), counter);
        let mut packet = packet_9_3_silence();
        sealer.seal(&mut packet).unwrap();
        assert_eq!(packet, expected, "{mode} counter {counter}");

        // The sealer's next packet takes counter + 1.
        let mut next = packet_9_3_silence();
        sealer.seal(&mut next).unwrap();
        assert_eq!(next[31..], (counter + 1).to_be_bytes(), "{mode}");
    }
    // Counter 0 then 1 from one sealer reproduces both vectors in order.
    for mode in Mode::LIVE {
        let mut sealer = Sealer::new(Cipher::new(mode, &key), 0);
        for (m, _, expected) in SEALED_9_4.iter().filter(|v| v.0 == mode) {
            let mut packet = packet_9_3_silence();
            sealer.seal(&mut packet).unwrap();
            assert_eq!(packet, hx(expected), "{m}");
        }
    }
}

#[test]
fn transport_9_4_seal_with_nonce_and_open() {
    let key = SecretKey::new(key_9_4());
    for (mode, counter, expected) in SEALED_9_4 {
        let expected = hx(expected);
        let cipher = Cipher::new(mode, &key);
        assert_eq!(cipher.suffix_len(), 4);
        let mut buf = packet_9_3_silence();
        let len = buf.len();
        buf.resize(len + mode.overhead(), 0);
        let n = cipher.seal_with_nonce(&mut buf, len, &counter.to_be_bytes()).unwrap();
        assert_eq!(n, 35);
        assert_eq!(buf, expected, "{mode} counter {counter}");

        let mut rx = expected.clone();
        let opened = cipher.open(&mut rx).unwrap();
        assert_eq!(opened.payload, &OPUS_SILENCE);
        assert_eq!(opened.header.sequence, 1);
        assert_eq!(opened.header.timestamp, 960);
        assert_eq!(opened.header.ssrc, 1);
        assert_eq!(opened.header.payload_type, 120);
        assert!(!opened.header.marker);
        assert_eq!(opened.extension, None);

        // A nonce of the wrong length is refused.
        let mut buf = packet_9_3_silence();
        buf.resize(len + mode.overhead(), 0);
        assert_eq!(cipher.seal_with_nonce(&mut buf, len, &[0; 3]), Err(Error::BadNonceLength { expected: 4, got: 3 }));
    }
}

#[test]
fn transport_9_4_extension_receive() {
    let key = SecretKey::new(key_9_4());
    let sealed = hx(EXTENSION_9_4);
    assert_eq!(sealed.len(), 43);
    let cipher = Cipher::new(Mode::Aes256GcmRtpSize, &key);

    let mut rx = sealed.clone();
    let opened = cipher.open(&mut rx).unwrap();
    assert_eq!(opened.payload, &[0xF8, 0xFF, 0xFE]);
    assert_eq!((opened.header.sequence, opened.header.timestamp, opened.header.ssrc), (1, 960, 1));
    let ext = opened.extension.unwrap();
    assert_eq!(ext.profile(), 0xBEDE);
    assert!(ext.is_one_byte());
    assert_eq!(ext.body(), &[0x10, 0x55, 0x00, 0x00]);
    let elements: Vec<_> = ext.elements().collect();
    assert_eq!(elements.len(), 1);
    assert_eq!((elements[0].id, elements[0].data), (1, &[0x55][..]));
    // The whole plaintext is decrypted in place after the 16-byte AAD.
    assert_eq!(&rx[16..23], &hx("10 55 00 00 F8 FF FE")[..]);

    // Sealing the same plaintext with counter 0 gives the vector back.
    let mut buf = Vec::new();
    let hdr = RtpHeader {
        payload_type: 120,
        sequence: 1,
        timestamp: 960,
        ssrc: 1,
        extension: Some((0xBEDE, &[0x10, 0x55, 0x00, 0x00])),
        ..Default::default()
    };
    let len = hdr.write(&OPUS_SILENCE, &mut buf).unwrap();
    let plain = buf.clone();
    buf.resize(len + 20, 0);
    cipher.seal_with_nonce(&mut buf, len, &[0; 4]).unwrap();
    assert_eq!(buf, sealed);
    let mut packet = plain;
    Sealer::new(Cipher::new(Mode::Aes256GcmRtpSize, &key), 0).seal(&mut packet).unwrap();
    assert_eq!(packet, sealed);
}

// ---------------------------------------------------------------------------
// ip-discovery.jsonl

#[test]
fn ip_discovery_records() {
    let records = common::json_lines(common::IP_DISCOVERY);
    assert_eq!(records.len(), 28);
    let frames = common::json_lines(common::GATEWAY_FRAMES);
    let (mut requests, mut responses) = (0, 0);
    let mut role = String::new();
    for r in &records {
        let datagram = hx(r["datagram"].as_str().unwrap());
        let ssrc = u32::try_from(r["ssrc"].as_u64().unwrap()).unwrap();
        let call = r["call"].as_u64().unwrap();
        if r["direction"] == "client_to_server" {
            requests += 1;
            role = r["role"].as_str().unwrap().to_owned();
            assert_eq!(discovery::request(ssrc).as_slice(), datagram.as_slice());
            assert_eq!(classify(&datagram), DatagramKind::DiscoveryRequest);
            continue;
        }
        responses += 1;
        let d = Discovery::parse_response(&datagram).unwrap();
        let address = r["address"].as_str().unwrap();
        let port = u16::try_from(r["port"].as_u64().unwrap()).unwrap();
        assert_eq!((d.ssrc, d.address, d.port), (ssrc, address, port));
        assert_eq!(classify(&datagram), DatagramKind::DiscoveryResponse);
        assert_eq!(discovery::response(ssrc, address, port).unwrap().as_slice(), datagram.as_slice());

        // The same client's Select Protocol carries that address and port.
        let selects: Vec<serde_json::Value> = frames
            .iter()
            .filter(|f| f["call"].as_u64() == Some(call) && f["role"] == role.as_str())
            .filter(|f| f["op"] == 1)
            .map(|f| serde_json::from_str(f["text"].as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(selects.len(), 1, "call {call} {role}");
        let data = &selects[0]["d"]["data"];
        assert_eq!(data["address"], address, "call {call} {role}");
        assert_eq!(data["port"].as_u64(), Some(u64::from(port)));
    }
    assert_eq!((requests, responses), (14, 14));
}

// ---------------------------------------------------------------------------
// transport.jsonl

#[test]
fn transport_records_open() {
    for r in transport_records() {
        let what = format!("{} call {} #{} {}", r.mode, r.call, r.index, r.direction);
        let cipher = Cipher::new(r.mode(), &r.key());
        let mut buf = r.datagram();
        let opened = cipher.open(&mut buf).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(opened.payload.to_vec(), r.opus(), "{what}");
        assert_eq!(opened.header.sequence, r.seq, "{what}");
        assert_eq!(opened.header.timestamp, r.timestamp, "{what}");
        assert_eq!(opened.header.ssrc, r.ssrc, "{what}");
        assert_eq!(opened.header.marker, r.marker, "{what}");
        assert_eq!(opened.header.payload_type, 120, "{what}");
        let ext = opened.extension.map(|e| (e.profile(), e.body().to_vec()));
        assert_eq!(ext, r.extension(), "{what}");

        // The appended nonce bytes are the recorded counter / nonce.
        let d = r.datagram();
        let suffix = &d[d.len() - cipher.suffix_len()..];
        assert_eq!(suffix, r.appended_nonce().as_slice(), "{what}");
        // And the full nonce is the suffix (or header) padded with zeros.
        let nonce = r.nonce();
        let src: &[u8] = if r.mode() == Mode::XSalsa20Poly1305 { &d[..12] } else { suffix };
        assert_eq!(&nonce[..src.len()], src, "{what}");
        assert!(nonce[src.len()..].iter().all(|&b| b == 0), "{what}");
    }
}

#[test]
fn transport_records_opus_matches_recipe() {
    for r in transport_records() {
        assert_eq!(r.opus(), synthetic_opus(r.index), "{} #{}", r.mode, r.index);
    }
}

#[test]
fn transport_records_seal_byte_exact() {
    for r in transport_records() {
        let what = format!("{} call {} #{} {}", r.mode, r.call, r.index, r.direction);
        let ext = r.extension();
        let csrcs = r.csrcs.clone().unwrap_or_default();
        let hdr = RtpHeader {
            marker: r.marker,
            payload_type: 120,
            sequence: r.seq,
            timestamp: r.timestamp,
            ssrc: r.ssrc,
            csrcs: &csrcs,
            extension: ext.as_ref().map(|(p, b)| (*p, b.as_slice())),
            padding: 0,
        };
        let mut plain = Vec::new();
        let len = hdr.write(&r.opus(), &mut plain).unwrap();

        let cipher = Cipher::new(r.mode(), &r.key());
        let mut buf = plain.clone();
        buf.resize(len + r.mode().overhead(), 0);
        let n = cipher.seal_with_nonce(&mut buf, len, &r.appended_nonce()).unwrap();
        assert_eq!(hex::encode(&buf[..n]), r.datagram, "{what}");

        if let Some(counter) = r.nonce_counter {
            let mut sealer = Sealer::new(Cipher::new(r.mode(), &r.key()), counter);
            let mut packet = plain.clone();
            sealer.seal(&mut packet).unwrap();
            assert_eq!(hex::encode(&packet), r.datagram, "{what} (Sealer)");
            assert_eq!(sealer.nonces_left(), (1 << 32) - 1);
        }
    }
}

#[test]
fn transport_records_stream_rules() {
    let records = transport_records();
    let mut streams: Vec<Vec<&common::TransportRecord>> = Vec::new();
    for r in &records {
        match streams.iter_mut().find(|s| s[0].call == r.call && s[0].direction == r.direction) {
            Some(s) => s.push(r),
            None => streams.push(vec![r]),
        }
    }
    assert_eq!(streams.len(), 11);
    for s in &mut streams {
        s.sort_by_key(|r| r.index);
        let first = s[0];
        let counter_mode = first.nonce_counter.is_some();
        assert_eq!(s.len(), 8, "call {} {}", first.call, first.direction);
        for (i, r) in s.iter().enumerate() {
            let what = format!("{} call {} #{} {}", r.mode, r.call, r.index, r.direction);
            let i32_ = i as u32;
            assert_eq!(r.index, i32_, "{what}");
            assert_eq!(r.seq, first.seq.wrapping_add(i as u16), "{what}");
            assert_eq!(r.timestamp, first.timestamp.wrapping_add(960 * i32_), "{what}");
            assert_eq!(r.ssrc, first.ssrc, "{what}");
            assert!(!r.marker, "{what}");
            assert_eq!(r.mode, first.mode, "{what}");
            assert_eq!(r.secret_key, first.secret_key, "{what}");
            if counter_mode {
                // Both discord.js and the refserver's forwarding start at 1.
                assert_eq!(r.nonce_counter, Some(1 + i32_), "{what}");
            }
            if r.sent_by_discordjs() {
                assert!(r.extension.is_none() && r.csrcs.is_none(), "{what}");
                assert_eq!(r.datagram()[0], 0x80, "{what}");
            }
        }
    }
}

#[test]
fn transport_records_forwarding_keeps_sender_fields() {
    let records = transport_records();
    let mut compared = 0;
    for fwd in records.iter().filter(|r| !r.sent_by_discordjs()) {
        let Some(sent) = records.iter().find(|s| s.sent_by_discordjs() && s.call == fwd.call && s.seq == fwd.seq)
        else {
            // Call 6 recorded only the forwarded side.
            assert_eq!(fwd.call, 6);
            continue;
        };
        let what = format!("{} call {} seq {}", fwd.mode, fwd.call, fwd.seq);
        assert_eq!(fwd.ssrc, sent.ssrc, "{what}");
        assert_eq!(fwd.timestamp, sent.timestamp, "{what}");
        assert_eq!(fwd.opus, sent.opus, "{what}");
        assert_eq!(fwd.marker, sent.marker, "{what}");
        assert_eq!(fwd.mode, sent.mode, "{what}");
        // Sealed under the receiver's own key.
        assert_ne!(fwd.secret_key, sent.secret_key, "{what}");
        let mut buf = fwd.datagram();
        assert_eq!(
            Cipher::new(sent.mode(), &sent.key()).open(&mut buf).err(),
            Some(Error::AuthenticationFailed),
            "{what}"
        );
        compared += 1;
    }
    assert_eq!(compared, 40);
}
