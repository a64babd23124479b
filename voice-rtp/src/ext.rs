//! RTP header extensions (RFC 8285): the one-byte (`0xBEDE`) and two-byte
//! (`0x100x`) element forms that Discord's forwarded audio carries.

/// The profile of the one-byte header form.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// A header extension: its profile and body (whole 32-bit words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    profile: u16,
    body: &'a [u8],
}

/// One element of a one-byte or two-byte header extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionElement<'a> {
    /// Element id (1..=14 for the one-byte form, 1..=255 for two-byte).
    pub id: u8,
    /// Element data.
    pub data: &'a [u8],
}

impl<'a> Extension<'a> {
    /// An extension with the given profile and body.
    pub fn new(profile: u16, body: &'a [u8]) -> Self {
        Extension { profile, body }
    }
    /// The profile from the preamble.
    pub fn profile(&self) -> u16 {
        self.profile
    }
    /// The body (its length is 4 times the preamble's word count).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
    /// Whether the profile is RFC 8285's one-byte form.
    pub fn is_one_byte(&self) -> bool {
        self.profile == ONE_BYTE_PROFILE
    }
    /// Whether the profile is RFC 8285's two-byte form (`0x100` + 4 app bits).
    pub fn is_two_byte(&self) -> bool {
        self.profile & 0xFFF0 == 0x1000
    }
    /// The elements, for the one- and two-byte forms; empty for other
    /// profiles. Iteration stops at the first element that runs past the body.
    pub fn elements(&self) -> Elements<'a> {
        let kind = if self.is_one_byte() {
            Kind::OneByte
        } else if self.is_two_byte() {
            Kind::TwoByte
        } else {
            Kind::Opaque
        };
        Elements { body: self.body, kind }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    OneByte,
    TwoByte,
    Opaque,
}

/// Iterator over [`ExtensionElement`]s.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    body: &'a [u8],
    kind: Kind,
}

impl<'a> Iterator for Elements<'a> {
    type Item = ExtensionElement<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&first, rest) = self.body.split_first()?;
            let (id, len, rest) = match self.kind {
                Kind::Opaque => return None,
                Kind::OneByte => {
                    if first == 0 {
                        self.body = rest;
                        continue;
                    }
                    let id = first >> 4;
                    if id == 15 {
                        return None;
                    }
                    (id, usize::from(first & 0x0F) + 1, rest)
                }
                Kind::TwoByte => {
                    if first == 0 {
                        self.body = rest;
                        continue;
                    }
                    let (&len, rest) = rest.split_first()?;
                    (first, usize::from(len), rest)
                }
            };
            if rest.len() < len {
                self.body = &[];
                return None;
            }
            let (data, tail) = rest.split_at(len);
            self.body = tail;
            return Some(ExtensionElement { id, data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_elements_skip_padding() {
        let body = [0x10, 0x55, 0x00, 0x00, 0x21, 0xAA, 0xBB, 0x00];
        let e = Extension::new(ONE_BYTE_PROFILE, &body);
        let v: Vec<_> = e.elements().collect();
        assert_eq!(v, vec![ExtensionElement { id: 1, data: &[0x55] }, ExtensionElement { id: 2, data: &[0xAA, 0xBB] }]);
    }

    #[test]
    fn two_byte_elements_and_truncation() {
        let body = [0x05, 0x02, 0x01, 0x02, 0x00, 0x07, 0x09, 0x01];
        let e = Extension::new(0x1000, &body);
        let v: Vec<_> = e.elements().collect();
        assert_eq!(v, vec![ExtensionElement { id: 5, data: &[1, 2] }]);
        assert_eq!(Extension::new(0x1234, &body).elements().count(), 0);
    }
}
