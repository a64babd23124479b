//! Opening by a header read once gives what `open` gives, and a layout of
//! another packet is refused or fails to authenticate, never misreads.

#![allow(clippy::unwrap_used)]

use voice_rtp::{Cipher, Mode, RtpHeader, RtpPacket, Sealer, SecretKey};

fn sealed(mode: Mode, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut sealer = Sealer::new(Cipher::new(mode, &SecretKey::new([3; 32])), 9);
    let mut header = [0u8; 12];
    RtpHeader::write_basic(&mut header, seq, 960, 77);
    let mut out = header.to_vec();
    out.extend_from_slice(payload);
    sealer.seal(&mut out).unwrap();
    out
}

#[test]
fn a_layout_opens_like_open_in_every_mode_and_only_its_own_packet() {
    for mode in Mode::PREFERENCE {
        let cipher = Cipher::new(mode, &SecretKey::new([3; 32]));
        let packet = sealed(mode, 5, &[0xFC; 40]);
        let (mut a, mut b) = (packet.clone(), packet.clone());
        let layout = RtpPacket::new(&b).unwrap().layout();
        assert_eq!(layout.fields.ssrc, 77);
        let opened = cipher.open_laid_out(&mut b, &layout).unwrap();
        let (header, payload) = (opened.header, opened.payload.to_vec());
        let plain = cipher.open(&mut a).unwrap();
        assert_eq!((header, payload), (plain.header, plain.payload.to_vec()), "{mode:?}");

        let mut longer = sealed(mode, 6, &[0xFC; 41]);
        assert!(cipher.open_laid_out(&mut longer, &layout).is_err(), "{mode:?}: another length");
        let mut other = sealed(mode, 6, &[0xFC; 40]);
        let other_layout = RtpPacket::new(&other).unwrap().layout();
        let mut packet = packet.clone();
        assert!(cipher.open_laid_out(&mut packet, &other_layout).is_err(), "{mode:?}: another header");
        assert!(cipher.open_laid_out(&mut other, &other_layout).is_ok());
    }
}
