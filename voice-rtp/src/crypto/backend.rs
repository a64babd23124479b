//! The AEAD primitives behind the modes, one place to swap implementations.
//!
//! Each backend encrypts in place with a detached 16-byte tag, and decrypts
//! in place checking it. Keys inside the backends are zeroized on drop.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use crypto_secretbox::XSalsa20Poly1305;

use crate::Error;

/// Length of every tag here.
pub(crate) const TAG_LEN: usize = 16;

pub(crate) enum Backend {
    Aes(Box<Aes256Gcm>),
    XChaCha(Box<XChaCha20Poly1305>),
    XSalsa(Box<XSalsa20Poly1305>),
}

impl Backend {
    pub(crate) fn aes(key: &[u8; 32]) -> Self {
        Backend::Aes(Box::new(Aes256Gcm::new(key.into())))
    }
    pub(crate) fn xchacha(key: &[u8; 32]) -> Self {
        Backend::XChaCha(Box::new(XChaCha20Poly1305::new(key.into())))
    }
    pub(crate) fn xsalsa(key: &[u8; 32]) -> Self {
        Backend::XSalsa(Box::new(XSalsa20Poly1305::new(key.into())))
    }

    /// Nonce length the primitive takes.
    pub(crate) fn nonce_len(&self) -> usize {
        match self {
            Backend::Aes(_) => 12,
            Backend::XChaCha(_) | Backend::XSalsa(_) => 24,
        }
    }

    /// Encrypts `data` in place; returns the tag. `nonce` is `nonce_len()` long.
    pub(crate) fn seal(
        &self,
        nonce: &[u8],
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        let tag = match self {
            Backend::Aes(c) => c.encrypt_in_place_detached(nonce.into(), aad, data),
            Backend::XChaCha(c) => c.encrypt_in_place_detached(nonce.into(), aad, data),
            Backend::XSalsa(c) => c.encrypt_in_place_detached(nonce.into(), aad, data),
        }
        // The only failure is a plaintext beyond the primitive's limit (GiBs).
        .map_err(|_| Error::OutOfRange("plaintext too long"))?;
        Ok(tag.into())
    }

    /// Decrypts `data` in place after checking `tag`.
    pub(crate) fn open(
        &self,
        nonce: &[u8],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Error> {
        match self {
            Backend::Aes(c) => c.decrypt_in_place_detached(nonce.into(), aad, data, tag.into()),
            Backend::XChaCha(c) => c.decrypt_in_place_detached(nonce.into(), aad, data, tag.into()),
            Backend::XSalsa(c) => c.decrypt_in_place_detached(nonce.into(), aad, data, tag.into()),
        }
        .map_err(|_| Error::AuthenticationFailed)
    }
}
