//! Op 28 by hand: the commit and the optional Welcome split apart, and the
//! few commit fields the delivery service must check (openmls keeps a
//! commit's contents private, so they are read here from the bytes).
//!
//! Layout (RFC 9420 §6, §12.4): `MLSMessage { u16 version; u16 wire_format;
//! PublicMessage { FramedContent { opaque group_id<V>; u64 epoch; Sender
//! { u8 type; u32 leaf if member }; opaque authenticated_data<V>; u8
//! content_type; Commit { ProposalOrRef proposals<V>; optional<UpdatePath>
//! path } }; auth; membership_tag } }`, `ProposalOrRef { u8 type; reference
//! = opaque<V> }`.

use openmls::prelude::{MlsMessageIn, Welcome};
use tls_codec::DeserializeBytes;

use super::sender::guarded;

/// MLS 1.0.
const MLS10: u64 = 1;
/// `WireFormat::mls_public_message`.
const PUBLIC_MESSAGE: u64 = 1;
/// `SenderType::member`.
const MEMBER: u64 = 1;
/// `ContentType::commit`.
const COMMIT: u64 = 3;
/// `ProposalOrRefType::reference`.
const REFERENCE: u64 = 2;

/// Why an op 28 was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub(crate) enum CommitError {
    /// Not an MLSMessage followed by nothing or a Welcome.
    Undecodable,
    /// Not MLS 1.0.
    Version,
    /// Not a PublicMessage.
    WireFormat,
    /// Another group.
    GroupId,
    /// Another epoch.
    Epoch,
    /// Not from a member, or from another leaf than the committer's.
    Sender,
    /// Authenticated data DAVE does not use.
    AuthenticatedData,
    /// Not a commit.
    ContentType,
    /// A proposal by value instead of by reference.
    InlineProposal,
    /// The references are not those the committer was sent.
    References,
    /// A joiner has no secrets in the Welcome, or a Welcome without joiners.
    Welcome,
    /// The committer got no proposals in this epoch.
    NotRecipient,
}

impl CommitError {
    /// A short reason for events and logs.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            CommitError::Undecodable => "undecodable",
            CommitError::Version => "version",
            CommitError::WireFormat => "wire format",
            CommitError::GroupId => "group id",
            CommitError::Epoch => "epoch",
            CommitError::Sender => "sender",
            CommitError::AuthenticatedData => "authenticated data",
            CommitError::ContentType => "content type",
            CommitError::InlineProposal => "inline proposal",
            CommitError::References => "proposal references",
            CommitError::Welcome => "welcome",
            CommitError::NotRecipient => "not a recipient",
        }
    }
}

/// What op 28 holds.
#[derive(Debug)]
pub(crate) struct ParsedCommit<'a> {
    /// The commit MLSMessage, to announce verbatim.
    pub(crate) commit: &'a [u8],
    /// The Welcome bytes after it, if any.
    pub(crate) welcome: Option<&'a [u8]>,
    /// Key package references the Welcome has secrets for.
    pub(crate) welcomed: Vec<Vec<u8>>,
    pub(crate) group_id: Vec<u8>,
    pub(crate) epoch: u64,
    /// The committer's leaf.
    pub(crate) sender_leaf: u32,
    /// The proposal references, in commit order.
    pub(crate) references: Vec<Vec<u8>>,
}

/// Reads a big-endian integer of `n` bytes (at most 8).
fn int(b: &[u8], n: usize) -> Result<(u64, &[u8]), CommitError> {
    let head = b.get(..n).ok_or(CommitError::Undecodable)?;
    Ok((head.iter().fold(0u64, |v, &x| v << 8 | u64::from(x)), &b[n..]))
}

/// Reads an `opaque<V>` (RFC 9420 §2.1.2): a length of 1, 2 or 4 bytes
/// whose top two bits give its size, in the shortest form, then the bytes.
fn opaque(b: &[u8]) -> Result<(&[u8], &[u8]), CommitError> {
    let first = *b.first().ok_or(CommitError::Undecodable)?;
    let (size, min) = match first >> 6 {
        0 => (1, 0),
        1 => (2, 0x40),
        2 => (4, 0x4000),
        _ => return Err(CommitError::Undecodable),
    };
    let (len, rest) = int(b, size)?;
    let len = len & !(0b11 << (8 * size - 2));
    if len < min {
        return Err(CommitError::Undecodable);
    }
    let len = usize::try_from(len).map_err(|_| CommitError::Undecodable)?;
    let value = rest.get(..len).ok_or(CommitError::Undecodable)?;
    Ok((value, &rest[len..]))
}

/// Splits and reads an op 28 body (after the opcode).
pub(crate) fn parse(body: &[u8]) -> Result<ParsedCommit<'_>, CommitError> {
    // The fields first, by hand: junk is refused before any decoder sees it.
    let (version, b) = int(body, 2)?;
    if version != MLS10 {
        return Err(CommitError::Version);
    }
    let (wire_format, b) = int(b, 2)?;
    if wire_format != PUBLIC_MESSAGE {
        return Err(CommitError::WireFormat);
    }
    let (group_id, b) = opaque(b)?;
    let (epoch, b) = int(b, 8)?;
    let (sender_type, b) = int(b, 1)?;
    if sender_type != MEMBER {
        return Err(CommitError::Sender);
    }
    let (sender_leaf, b) = int(b, 4)?;
    let (aad, b) = opaque(b)?;
    if !aad.is_empty() {
        return Err(CommitError::AuthenticatedData);
    }
    let (content_type, b) = int(b, 1)?;
    if content_type != COMMIT {
        return Err(CommitError::ContentType);
    }
    let (mut proposals, _) = opaque(b)?;
    let mut references = Vec::new();
    while !proposals.is_empty() {
        let (kind, rest) = int(proposals, 1)?;
        if kind != REFERENCE {
            return Err(CommitError::InlineProposal);
        }
        let (reference, rest) = opaque(rest)?;
        references.push(reference.to_vec());
        proposals = rest;
    }
    // openmls frames the whole MLSMessage (the path too): what is left is
    // the Welcome.
    let rest = guarded(|| MlsMessageIn::tls_deserialize_bytes(body).ok().map(|(_, rest)| rest))
        .ok_or(CommitError::Undecodable)?;
    let commit = body.get(..body.len() - rest.len()).ok_or(CommitError::Undecodable)?;
    let (welcome, welcomed) = if rest.is_empty() {
        (None, Vec::new())
    } else {
        let w = guarded(|| Welcome::tls_deserialize_exact_bytes(rest).ok()).ok_or(CommitError::Welcome)?;
        (Some(rest), w.secrets().iter().map(|s| s.new_member().as_slice().to_vec()).collect())
    };
    Ok(ParsedCommit {
        commit,
        welcome,
        welcomed,
        group_id: group_id.to_vec(),
        epoch,
        sender_leaf: u32::try_from(sender_leaf).map_err(|_| CommitError::Undecodable)?,
        references,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn opaque_lengths() {
        assert_eq!(opaque(&[0x02, 7, 8, 9]), Ok((&[7u8, 8][..], &[9u8][..])));
        assert_eq!(opaque(&[0x40, 0x02, 7, 8]), Err(CommitError::Undecodable), "not minimal");
        let mut long = vec![0x40, 0x41];
        long.extend([1u8; 0x41]);
        assert_eq!(opaque(&long).map(|(v, r)| (v.len(), r.len())), Ok((0x41, 0)));
        assert_eq!(opaque(&[0xC0, 0, 0, 0]), Err(CommitError::Undecodable));
        assert_eq!(opaque(&[0x05, 1]), Err(CommitError::Undecodable));
        assert_eq!(int(&[1, 2], 2), Ok((0x102, &[][..])));
    }

    #[test]
    fn junk_is_refused_without_panic() {
        for junk in [&[][..], &[0, 1], &[0, 1, 0, 1, 8], &[0xFF; 64]] {
            assert!(parse(junk).is_err());
        }
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..2000 {
            let mut b = vec![0u8; rng.usize(0..200)];
            rng.fill(&mut b);
            if let Some(x) = b.get_mut(..4) {
                x.copy_from_slice(&[0, 1, 0, 1]);
            }
            let _ = parse(&b);
        }
    }
}
