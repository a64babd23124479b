//! The 32-byte transport secret key.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of Discord's transport key (`secret_key` in Session Description).
pub const KEY_LEN: usize = 32;

/// The transport secret key: zeroized on drop, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps key bytes. The caller should zeroize its own copy.
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(bytes)
    }

    /// Copies a key from a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(SecretKey(arr))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = SecretKey::new([0xAB; 32]);
        let s = format!("{k:?}");
        assert!(!s.contains("171") && !s.to_lowercase().contains("ab,"), "{s}");
        assert!(SecretKey::from_slice(&[1; 31]).is_none());
    }
}
