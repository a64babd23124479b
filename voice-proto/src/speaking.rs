//! Speaking flags: what kind of audio a client announces in op 5
//! (PROTOCOL.md §3.4).

use core::fmt;
use core::ops::{BitOr, BitOrAssign};

/// The speaking flags sent in op 5: microphone, soundshare, priority, or a
/// combination. Bits this crate does not name are kept as given. No flag
/// at all (`from_bits(0)`) tells the others you are not speaking while
/// audio flows: set at least one.
///
/// ```
/// use voice_proto::SpeakingFlags;
/// let flags = SpeakingFlags::SOUNDSHARE | SpeakingFlags::PRIORITY;
/// assert_eq!(flags.bits(), 6);
/// assert!(flags.contains(SpeakingFlags::PRIORITY));
/// assert!(!flags.contains(SpeakingFlags::MICROPHONE));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpeakingFlags(u32);

impl SpeakingFlags {
    /// Normal voice audio (the default).
    pub const MICROPHONE: SpeakingFlags = SpeakingFlags(1);
    /// Audio of a shared screen or application (no speaking indicator).
    pub const SOUNDSHARE: SpeakingFlags = SpeakingFlags(2);
    /// Priority speaker: other users' audio is lowered while this plays.
    pub const PRIORITY: SpeakingFlags = SpeakingFlags(4);

    /// Flags from their wire value.
    pub const fn from_bits(bits: u32) -> Self {
        SpeakingFlags(bits)
    }

    /// The wire value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: SpeakingFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl Default for SpeakingFlags {
    fn default() -> Self {
        SpeakingFlags::MICROPHONE
    }
}

impl BitOr for SpeakingFlags {
    type Output = SpeakingFlags;
    fn bitor(self, rhs: SpeakingFlags) -> SpeakingFlags {
        SpeakingFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for SpeakingFlags {
    fn bitor_assign(&mut self, rhs: SpeakingFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for SpeakingFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [(Self::MICROPHONE, "MICROPHONE"), (Self::SOUNDSHARE, "SOUNDSHARE"), (Self::PRIORITY, "PRIORITY")];
        let mut first = true;
        f.write_str("SpeakingFlags(")?;
        for (flag, name) in names {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        let rest = self.0 & !7;
        if rest != 0 || first {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_the_flags_and_keeps_unknown_bits() {
        assert_eq!(format!("{:?}", SpeakingFlags::default()), "SpeakingFlags(MICROPHONE)");
        let odd = SpeakingFlags::from_bits(0x15);
        assert_eq!(format!("{odd:?}"), "SpeakingFlags(MICROPHONE | PRIORITY | 0x10)");
        assert_eq!(format!("{:?}", SpeakingFlags::from_bits(0)), "SpeakingFlags(0x0)");
    }
}
