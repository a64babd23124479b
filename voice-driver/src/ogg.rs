//! Ogg Opus files (RFC 7845), read and written with the `ogg` crate.

use std::io::{Read, Seek, Write};

use ogg::{PacketReader, PacketWriteEndInfo, PacketWriter};

use crate::error::OggError;

/// Reads the Opus packets of an Ogg Opus stream, skipping its two headers.
pub struct OggOpusReader<R: Read + Seek> {
    packets: PacketReader<R>,
    header_seen: bool,
}

impl<R: Read + Seek> OggOpusReader<R> {
    /// Checks the `OpusHead` and `OpusTags` headers.
    pub fn new(reader: R) -> Result<Self, OggError> {
        let mut packets = PacketReader::new(reader);
        let head = packets.read_packet()?.ok_or(OggError::NotOpus("empty stream"))?;
        if !head.data.starts_with(b"OpusHead") {
            return Err(OggError::NotOpus("first packet is not OpusHead"));
        }
        Ok(OggOpusReader { packets, header_seen: false })
    }

    /// The next Opus packet, or `None` at the end.
    pub fn next_packet(&mut self) -> Result<Option<Vec<u8>>, OggError> {
        loop {
            let Some(p) = self.packets.read_packet()? else { return Ok(None) };
            if !self.header_seen {
                self.header_seen = true;
                if p.data.starts_with(b"OpusTags") {
                    continue;
                }
                return Err(OggError::NotOpus("second packet is not OpusTags"));
            }
            return Ok(Some(p.data));
        }
    }
}

/// Reads a whole Ogg Opus file's packets.
pub fn read_ogg_opus(bytes: &[u8]) -> Result<Vec<Vec<u8>>, OggError> {
    let mut r = OggOpusReader::new(std::io::Cursor::new(bytes))?;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet()? {
        out.push(p);
    }
    Ok(out)
}

/// Samples per channel (48 kHz) in an Opus packet, from its TOC byte
/// (RFC 6716 §3.1); `None` for an empty or malformed packet.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let per_frame: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    Some(per_frame * frames)
}

/// Pre-skip written in `OpusHead`: libopus's encoder look-ahead at 48 kHz,
/// what opusenc writes for the packets we relay.
const PRE_SKIP: u16 = 312;
/// Packets per Ogg page (one second of 20 ms packets), as opusenc does.
const PACKETS_PER_PAGE: u32 = 50;

/// Writes an Ogg Opus stream: headers, then one Ogg packet per Opus packet.
pub struct OggOpusWriter<W: Write> {
    writer: PacketWriter<'static, W>,
    serial: u32,
    granule: u64,
    held: Option<Vec<u8>>,
    in_page: u32,
}

impl<W: Write> OggOpusWriter<W> {
    /// Writes the `OpusHead` (stereo, 48 kHz) and `OpusTags` headers.
    pub fn new(writer: W, serial: u32) -> Result<Self, OggError> {
        let mut writer = PacketWriter::new(writer);
        let mut head = Vec::with_capacity(19);
        head.extend_from_slice(b"OpusHead");
        head.push(1); // version
        head.push(2); // channels
        head.extend_from_slice(&PRE_SKIP.to_le_bytes()); // pre-skip
        head.extend_from_slice(&48_000u32.to_le_bytes()); // input rate
        head.extend_from_slice(&0i16.to_le_bytes()); // gain
        head.push(0); // mapping family
        writer.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;
        let vendor = b"voice-tokio";
        let mut tags = Vec::new();
        tags.extend_from_slice(b"OpusTags");
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        writer.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;
        Ok(OggOpusWriter { writer, serial, granule: 0, held: None, in_page: 0 })
    }

    fn flush_held(&mut self, mut end: PacketWriteEndInfo) -> Result<(), OggError> {
        if let Some(p) = self.held.take() {
            self.granule += u64::from(opus_packet_samples(&p).unwrap_or(960));
            self.in_page += 1;
            if self.in_page >= PACKETS_PER_PAGE && matches!(end, PacketWriteEndInfo::NormalPacket) {
                end = PacketWriteEndInfo::EndPage;
            }
            if !matches!(end, PacketWriteEndInfo::NormalPacket) {
                self.in_page = 0;
            }
            self.writer.write_packet(p, self.serial, end, self.granule)?;
        }
        Ok(())
    }

    /// Appends one Opus packet.
    pub fn write_packet(&mut self, opus: &[u8]) -> Result<(), OggError> {
        // Hold one packet back so that `finish` can mark the last one.
        self.flush_held(PacketWriteEndInfo::NormalPacket)?;
        self.held = Some(opus.to_vec());
        Ok(())
    }

    /// Ends the stream and returns the writer.
    pub fn finish(mut self) -> Result<W, OggError> {
        if self.held.is_none() {
            self.held = Some(voice_rtp::OPUS_SILENCE.to_vec());
        }
        self.flush_held(PacketWriteEndInfo::EndStream)?;
        Ok(self.writer.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let packets: Vec<Vec<u8>> = (0..30u8).map(|i| vec![0xFC, i, i.wrapping_mul(7), 1, 2, 3]).collect();
        let mut w = OggOpusWriter::new(Vec::new(), 7).unwrap();
        for p in &packets {
            w.write_packet(p).unwrap();
        }
        let bytes = w.finish().unwrap();
        assert_eq!(read_ogg_opus(&bytes).unwrap(), packets);
        assert!(read_ogg_opus(b"not ogg").is_err());
    }

    #[test]
    fn toc_durations() {
        assert_eq!(opus_packet_samples(&[0xFC]), Some(960)); // CELT FB 20 ms
        assert_eq!(opus_packet_samples(&[0x78]), Some(960)); // SILK WB 20 ms (config 15)
        assert_eq!(opus_packet_samples(&[0xF8, 0xFF, 0xFE]), Some(960));
        assert_eq!(opus_packet_samples(&[0xFD]), Some(1920)); // two frames
        assert_eq!(opus_packet_samples(&[0xF3, 0x03]), Some(1440)); // CELT FB 10 ms, code 3, 3 frames
        assert_eq!(opus_packet_samples(&[]), None);
    }
}
