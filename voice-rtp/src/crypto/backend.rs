//! The AEAD primitives behind the modes, one place to swap implementations.
//!
//! Each backend encrypts in place with a detached 16-byte tag, and decrypts
//! in place checking it.
//!
//! Choices, measured (issue 2's closing note has the figures):
//! * AES-256-GCM: RustCrypto `aes-gcm`, whose key schedule is zeroized on
//!   drop. ring is ~1.6x faster on 120-byte packets but cannot zeroize its
//!   expanded key; both are far below a packet's 20 ms budget.
//! * XChaCha20-Poly1305: HChaCha20 (RustCrypto `chacha20`) derives the
//!   per-packet subkey, then ring's assembly ChaCha20-Poly1305 seals. The
//!   RustCrypto `chacha20poly1305` crate pays ~1.3 us per message in its AVX2
//!   Poly1305 set-up, 5.7x slower on 120-byte packets. The construction is
//!   the standard one (draft-irtf-cfrg-xchacha §2.3) and the test vectors
//!   check it against the RustCrypto implementation.
//! * XSalsa20-Poly1305 (legacy): RustCrypto `crypto_secretbox`.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use chacha20::cipher::consts::U10;
use chacha20::hchacha;
use crypto_secretbox::XSalsa20Poly1305;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

/// Length of every tag here.
pub(crate) const TAG_LEN: usize = 16;

pub(crate) enum Backend {
    Aes(Box<Aes256Gcm>),
    XChaCha(Box<Zeroizing<[u8; 32]>>),
    XSalsa(Box<XSalsa20Poly1305>),
    /// Fuzzing only: no encryption, and any tag opens, so that a fuzzer
    /// reaches everything behind authentication. Its nonce length is the
    /// mode's.
    #[cfg(feature = "fuzzing")]
    Null {
        nonce_len: usize,
    },
}

impl Backend {
    pub(crate) fn aes(key: &[u8; 32]) -> Self {
        Backend::Aes(Box::new(Aes256Gcm::new(key.into())))
    }
    pub(crate) fn xchacha(key: &[u8; 32]) -> Self {
        Backend::XChaCha(Box::new(Zeroizing::new(*key)))
    }
    pub(crate) fn xsalsa(key: &[u8; 32]) -> Self {
        Backend::XSalsa(Box::new(XSalsa20Poly1305::new(key.into())))
    }

    /// Nonce length the primitive takes.
    pub(crate) fn nonce_len(&self) -> usize {
        match self {
            Backend::Aes(_) => 12,
            Backend::XChaCha(_) | Backend::XSalsa(_) => 24,
            #[cfg(feature = "fuzzing")]
            Backend::Null { nonce_len } => *nonce_len,
        }
    }

    /// Encrypts `data` in place; returns the tag. `nonce` is `nonce_len()` long.
    #[inline]
    pub(crate) fn seal(&self, nonce: &[u8], aad: &[u8], data: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
        let tag = match self {
            Backend::Aes(c) => c.encrypt_in_place_detached(nonce.into(), aad, data),
            Backend::XChaCha(k) => return xchacha_seal(k, nonce, aad, data),
            Backend::XSalsa(c) => c.encrypt_in_place_detached(nonce.into(), aad, data),
            #[cfg(feature = "fuzzing")]
            Backend::Null { .. } => return Ok([0; TAG_LEN]),
        }
        // The only failure is a plaintext beyond the primitive's limit (GiBs).
        .map_err(|_| Error::OutOfRange("plaintext too long"))?;
        Ok(tag.into())
    }

    /// Decrypts `data` in place after checking `tag`.
    #[inline]
    pub(crate) fn open(&self, nonce: &[u8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), Error> {
        match self {
            Backend::Aes(c) => c.decrypt_in_place_detached(nonce.into(), aad, data, tag.into()),
            Backend::XChaCha(k) => return xchacha_open(k, nonce, aad, data, tag),
            Backend::XSalsa(c) => c.decrypt_in_place_detached(nonce.into(), aad, data, tag.into()),
            #[cfg(feature = "fuzzing")]
            Backend::Null { .. } => return Ok(()),
        }
        .map_err(|_| Error::AuthenticationFailed)
    }
}

/// ring's ChaCha20-Poly1305 under the HChaCha20 subkey for `nonce` (24 bytes),
/// with the IETF nonce `0000 ‖ nonce[16..24]`.
// Inlined so that ring's key (which embeds its large key-schedule union)
// is built in place rather than moved out of a Result on every packet.
#[inline(always)]
fn xchacha_key(key: &[u8; 32], nonce: &[u8]) -> Result<(LessSafeKey, Nonce), Error> {
    let mut sub: [u8; 32] = hchacha::<U10>(key.into(), nonce[..16].into()).into();
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &sub);
    sub.zeroize();
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&nonce[16..24]);
    // Only a wrong key length fails, and the length is fixed at 32.
    let key = LessSafeKey::new(unbound.map_err(|_| Error::OutOfRange("key length"))?);
    Ok((key, Nonce::assume_unique_for_key(n)))
}

#[inline]
fn xchacha_seal(key: &[u8; 32], nonce: &[u8], aad: &[u8], data: &mut [u8]) -> Result<[u8; TAG_LEN], Error> {
    let (k, n) = xchacha_key(key, nonce)?;
    let tag =
        k.seal_in_place_separate_tag(n, Aad::from(aad), data).map_err(|_| Error::OutOfRange("plaintext too long"))?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

#[inline]
fn xchacha_open(key: &[u8; 32], nonce: &[u8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), Error> {
    let (k, n) = xchacha_key(key, nonce)?;
    let tag = Tag::try_from(tag).map_err(|_| Error::AuthenticationFailed)?;
    k.open_in_place_separate_tag(n, Aad::from(aad), tag, data, 0..).map(|_| ()).map_err(|_| Error::AuthenticationFailed)
}
