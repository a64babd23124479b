//! Seal and open of Opus-sized packets in the two live modes, next to the
//! bare AEAD call on the same bytes, so the crate's overhead is visible as a
//! ratio: compare `<op>/<cipher>/<size>/ours` with `.../bare`.
//!
//! Caveat: `voice-rtp` now runs XChaCha20-Poly1305 as HChaCha20 + ring's
//! ChaCha20-Poly1305, while the XChaCha `bare` rows call RustCrypto's
//! `chacha20poly1305` as asked. So those rows compare two implementations,
//! not our overhead; in this bench binary the RustCrypto AVX2 backend also
//! keeps its `_mm256_*` intrinsics out of line (seen with `perf`). The
//! AES-GCM rows call the same primitive on both sides.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use chacha20::cipher::consts::U10;
use chacha20::hchacha;
use chacha20poly1305::XChaCha20Poly1305;
use criterion::{Criterion, criterion_group, criterion_main};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use voice_rtp::{Cipher, Mode, RtpHeader, Sealer, SecretKey};

const KEY: [u8; 32] = [0x5A; 32];
const TAG: usize = 16;
const SIZES: [usize; 2] = [120, 400];

/// The plaintext packet: a 12-byte RTP header and an Opus-sized payload.
fn plaintext(size: usize) -> Vec<u8> {
    let mut h = [0u8; 12];
    RtpHeader::write_basic(&mut h, 4242, 960 * 4242, 0x0DB4);
    let mut p = h.to_vec();
    p.extend((0..size).map(|i| (i * 31 + 7) as u8));
    p
}

/// The bare AEAD, behind one trait so both ciphers share the bench code.
trait Bare {
    const NONCE: usize;
    fn seal(&self, nonce: &[u8], aad: &[u8], data: &mut [u8]) -> [u8; TAG];
    fn open(&self, nonce: &[u8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> bool;
}

impl Bare for Aes256Gcm {
    const NONCE: usize = 12;
    fn seal(&self, nonce: &[u8], aad: &[u8], data: &mut [u8]) -> [u8; TAG] {
        self.encrypt_in_place_detached(nonce.into(), aad, data).unwrap().into()
    }
    fn open(&self, nonce: &[u8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> bool {
        self.decrypt_in_place_detached(nonce.into(), aad, data, tag.into()).is_ok()
    }
}

/// The construction our backend uses, called directly: HChaCha20 subkey,
/// then ring's ChaCha20-Poly1305 with the nonce's last 8 bytes.
struct RingXChaCha([u8; 32]);

impl RingXChaCha {
    fn key(&self, nonce: &[u8]) -> (LessSafeKey, Nonce) {
        let sub: [u8; 32] = hchacha::<U10>((&self.0).into(), nonce[..16].into()).into();
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &sub).unwrap());
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&nonce[16..24]);
        (key, Nonce::assume_unique_for_key(n))
    }
}

impl Bare for RingXChaCha {
    const NONCE: usize = 24;
    fn seal(&self, nonce: &[u8], aad: &[u8], data: &mut [u8]) -> [u8; TAG] {
        let (k, n) = self.key(nonce);
        let tag = k.seal_in_place_separate_tag(n, Aad::from(aad), data).unwrap();
        tag.as_ref().try_into().unwrap()
    }
    fn open(&self, nonce: &[u8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> bool {
        let (k, n) = self.key(nonce);
        k.open_in_place_separate_tag(n, Aad::from(aad), Tag::try_from(tag).unwrap(), data, 0..).is_ok()
    }
}

impl Bare for XChaCha20Poly1305 {
    const NONCE: usize = 24;
    fn seal(&self, nonce: &[u8], aad: &[u8], data: &mut [u8]) -> [u8; TAG] {
        self.encrypt_in_place_detached(nonce.into(), aad, data).unwrap().into()
    }
    fn open(&self, nonce: &[u8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> bool {
        self.decrypt_in_place_detached(nonce.into(), aad, data, tag.into()).is_ok()
    }
}

/// The bare seal of what the crate does: copy the plaintext in, put the
/// counter in the nonce, encrypt after the 12-byte AAD, append tag and suffix.
fn bare_seal<B: Bare>(aead: &B, plain: &[u8], buf: &mut [u8], counter: u32) -> usize {
    let len = plain.len();
    buf[..len].copy_from_slice(plain);
    let mut nonce = [0u8; 24];
    nonce[..4].copy_from_slice(&counter.to_be_bytes());
    let (aad, rest) = buf.split_at_mut(12);
    let tag = aead.seal(&nonce[..B::NONCE], aad, &mut rest[..len - 12]);
    rest[len - 12..len - 12 + TAG].copy_from_slice(&tag);
    rest[len - 12 + TAG..len - 12 + TAG + 4].copy_from_slice(&counter.to_be_bytes());
    len + TAG + 4
}

/// The bare open: copy the sealed packet in, nonce from the last 4 bytes.
fn bare_open<B: Bare>(aead: &B, sealed: &[u8], buf: &mut [u8]) -> usize {
    let n = sealed.len();
    buf[..n].copy_from_slice(sealed);
    let mut nonce = [0u8; 24];
    nonce[..4].copy_from_slice(&buf[n - 4..n]);
    let (aad, rest) = buf[..n - 4].split_at_mut(12);
    let (ct, tag) = rest.split_at_mut(n - 4 - 12 - TAG);
    assert!(aead.open(&nonce[..B::NONCE], aad, ct, tag));
    ct.len()
}

fn bench_mode<B: Bare, A: Bare>(c: &mut Criterion, mode: Mode, name: &str, bare: &B, alt: Option<(&str, &A)>) {
    let key = SecretKey::new(KEY);
    for size in SIZES {
        let plain = plaintext(size);
        let len = plain.len();
        let total = len + mode.overhead();

        // Both implementations must agree byte for byte before timing.
        let mut ours_buf = plain.clone();
        ours_buf.resize(total, 0);
        let mut sealer = Sealer::new(Cipher::new(mode, &key), 1);
        sealer.seal_in_place(&mut ours_buf, len).unwrap();
        let mut bare_buf = vec![0u8; total];
        bare_seal(bare, &plain, &mut bare_buf, 1);
        assert_eq!(ours_buf, bare_buf, "{mode} {size}");
        let sealed = ours_buf;

        let mut g = c.benchmark_group(format!("seal/{name}/{size}"));
        g.bench_function("ours", |b| {
            let mut sealer = Sealer::new(Cipher::new(mode, &key), 1);
            let mut buf = vec![0u8; total];
            b.iter(|| {
                buf[..len].copy_from_slice(black_box(&plain));
                black_box(sealer.seal_in_place(&mut buf, len).unwrap())
            })
        });
        g.bench_function("bare", |b| {
            let mut buf = vec![0u8; total];
            let mut counter = 1u32;
            b.iter(|| {
                counter = counter.wrapping_add(1);
                black_box(bare_seal(bare, black_box(&plain), &mut buf, counter))
            })
        });
        if let Some((label, alt)) = alt {
            g.bench_function(label, |b| {
                let mut buf = vec![0u8; total];
                let mut counter = 1u32;
                b.iter(|| {
                    counter = counter.wrapping_add(1);
                    black_box(bare_seal(alt, black_box(&plain), &mut buf, counter))
                })
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("open/{name}/{size}"));
        g.bench_function("ours", |b| {
            let cipher = Cipher::new(mode, &key);
            let mut buf = vec![0u8; total];
            b.iter(|| {
                buf.copy_from_slice(black_box(&sealed));
                black_box(cipher.open(&mut buf).unwrap().payload.len())
            })
        });
        g.bench_function("bare", |b| {
            let mut buf = vec![0u8; total];
            b.iter(|| black_box(bare_open(bare, black_box(&sealed), &mut buf)))
        });
        if let Some((label, alt)) = alt {
            g.bench_function(label, |b| {
                let mut buf = vec![0u8; total];
                b.iter(|| black_box(bare_open(alt, black_box(&sealed), &mut buf)))
            });
        }
        g.finish();
    }
}

fn crypto(c: &mut Criterion) {
    let aes = Aes256Gcm::new(&KEY.into());
    bench_mode(c, Mode::Aes256GcmRtpSize, "aes256gcm", &aes, None::<(&str, &Aes256Gcm)>);
    // "bare" is the construction our backend uses (HChaCha20 + ring);
    // "rustcrypto" is the chacha20poly1305 crate, the alternative we measured.
    let rustcrypto = XChaCha20Poly1305::new(&KEY.into());
    bench_mode(
        c,
        Mode::XChaCha20Poly1305RtpSize,
        "xchacha20poly1305",
        &RingXChaCha(KEY),
        Some(("rustcrypto", &rustcrypto)),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = crypto
}
criterion_main!(benches);
