//! Fuzz target bodies, compiled into the crate so that stable CI replays the
//! committed corpus through the same code the fuzzer runs.

use crate::{Cipher, Mode, Sealer, SecretKey};

/// Parses `data` as RTP, RTCP, discovery and extensions; checks that the
/// reported lengths add up.
pub fn packet_views(data: &[u8]) {
    let _ = crate::classify(data);
    if let Ok(p) = crate::RtpPacket::new(data) {
        let _ = p.csrcs().count();
        if let (Ok(h), Ok(pad)) = (p.header_len(), p.padding_len()) {
            let payload = p.payload().map(|x| x.len()).unwrap_or(0);
            assert!(h + pad + payload <= data.len());
        }
        if let Ok(Some(e)) = p.extension() {
            assert!(e.elements().map(|el| el.data.len()).sum::<usize>() <= e.body().len());
        }
    }
    for pkt in crate::rtcp::compound(data).flatten() {
        let _ = pkt.parse();
    }
    let _ = crate::discovery::Discovery::parse(data);
}

/// Opens `data` under every mode with a fixed key, then checks that sealing
/// an arbitrary payload and opening it gives the payload back.
pub fn open_and_round_trip(data: &[u8]) {
    let key = SecretKey::new([0x42; 32]);
    for mode in Mode::PREFERENCE {
        let cipher = Cipher::new(mode, &key);
        let mut buf = data.to_vec();
        let _ = cipher.open(&mut buf);
        let mut buf = data.to_vec();
        let _ = cipher.open_rtcp(&mut buf);

        let mut sealer = Sealer::new(Cipher::new(mode, &key), u32::from(data.first().copied().unwrap_or(0)));
        let mut packet = vec![0u8; 12];
        crate::RtpHeader::write_basic((&mut packet[..12]).try_into().unwrap_or(&mut [0; 12]), 1, 2, 3);
        packet.extend_from_slice(data);
        if sealer.seal(&mut packet).is_ok() {
            let opened = cipher.open(&mut packet).map(|o| o.payload.to_vec());
            assert_eq!(opened.as_deref(), Ok(data), "{mode}");
        }
    }
}
