//! The room's external sender: its P-256 signing key (derived from the
//! server seed and the room), the op 25 body, the external Add and Remove
//! proposals it signs, and the check of a client's key package (op 26).

use openmls::prelude::hash_ref::make_proposal_ref;
use openmls::prelude::{
    BasicCredential, Ciphersuite, CredentialType, ExternalProposal, ExternalSender, GroupEpoch, GroupId, KeyPackage,
    KeyPackageIn, LeafNodeIndex, ProtocolVersion, SenderExtensionIndex, SignaturePublicKey,
};
use openmls_rust_crypto::{OpenMlsRustCrypto, RustCrypto};
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::{HashType, SignatureScheme};
use p256::ecdsa::signature::{RandomizedSigner, Signer as _};
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::rand_core::{CryptoRng, Error as RandError, RngCore};
use tls_codec::{DeserializeBytes, Serialize as _};
use voice_proto::wire::Snowflake;

/// DAVE protocol version 1 runs MLS ciphersuite 2 (PROTOCOL.md §6.4).
pub(crate) const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMP256_AES128GCM_SHA256_P256;

/// The identity in the external sender's basic credential: user id 0 as
/// 8 bytes big-endian, a snowflake no user has.
const IDENTITY: [u8; 8] = [0; 8];

/// Domain separation of the key derivation.
const KEY_LABEL: &[u8] = b"voice-mock DAVE external sender v1";

/// A proposal the room could not build or a key package it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub(crate) enum SenderError {
    /// openmls refused to build or hash the proposal.
    Proposal,
    /// The op 26 body is not a TLS-encoded KeyPackage.
    KeyPackageUndecodable,
    /// Signatures, version or keys of the key package do not verify.
    KeyPackageInvalid,
    /// The credential is not the sender's user id (basic, 8 bytes big-endian).
    KeyPackageCredential,
    /// Not ciphersuite 2.
    KeyPackageCiphersuite,
    /// The lifetime is not 0..2^64-1.
    KeyPackageLifetime,
}

impl SenderError {
    /// A short reason for events and logs.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            SenderError::Proposal => "proposal",
            SenderError::KeyPackageUndecodable => "undecodable",
            SenderError::KeyPackageInvalid => "invalid",
            SenderError::KeyPackageCredential => "credential",
            SenderError::KeyPackageCiphersuite => "ciphersuite",
            SenderError::KeyPackageLifetime => "lifetime",
        }
    }
}

/// A key package that passed the checks, with its reference (the Welcome
/// names it).
#[derive(Debug, Clone)]
pub(crate) struct CheckedKeyPackage {
    pub(crate) key_package: KeyPackage,
    pub(crate) reference: Vec<u8>,
}

/// One signed proposal: the MLSMessage and its ProposalRef.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedProposal {
    pub(crate) message: Vec<u8>,
    pub(crate) reference: Vec<u8>,
}

/// The room's external sender.
pub(crate) struct SenderKey {
    key: SigningKey,
    external_sender: Vec<u8>,
}

impl core::fmt::Debug for SenderKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SenderKey").field("external_sender", &self.external_sender.len()).finish_non_exhaustive()
    }
}

impl SenderKey {
    /// The key of room (`guild`, `channel`) under server seed `seed`: the
    /// first of SHA-256(label ‖ seed LE ‖ guild BE ‖ channel BE ‖ n), n = 0,
    /// 1, .., that is a valid P-256 scalar. Signing is RFC 6979, so the same
    /// seed gives the same op 25 and op 27 bytes.
    pub(crate) fn derive(seed: u64, guild: Snowflake, channel: Snowflake, crypto: &RustCrypto) -> SenderKey {
        let mut n: u8 = 0;
        let key = loop {
            let mut input = KEY_LABEL.to_vec();
            input.extend_from_slice(&seed.to_le_bytes());
            input.extend_from_slice(&guild.0.to_be_bytes());
            input.extend_from_slice(&channel.0.to_be_bytes());
            input.push(n);
            let mut digest = crypto.hash(HashType::Sha2_256, &input).unwrap_or_default();
            let key = SigningKey::from_slice(&digest);
            zeroize::Zeroize::zeroize(&mut digest);
            if let Ok(k) = key {
                break k;
            }
            // A digest of zero or above the group order: about 2^-32.
            n = n.wrapping_add(1);
        };
        let public = key.verifying_key().to_encoded_point(false).as_bytes().to_vec();
        let sender =
            ExternalSender::new(SignaturePublicKey::from(public), BasicCredential::new(IDENTITY.to_vec()).into());
        let external_sender = sender.tls_serialize_detached().unwrap_or_default();
        SenderKey { key, external_sender }
    }

    /// The op 25 body: the TLS-encoded `ExternalSender`.
    pub(crate) fn external_sender(&self) -> &[u8] {
        &self.external_sender
    }

    /// An external proposal at `epoch` of group `group`, signed, with its
    /// reference. `attempt` 0 signs with RFC 6979 alone; a later attempt at
    /// the same epoch (after a revoke) hedges the nonce with `attempt`, so
    /// that the new proposal has a new reference and a commit to the
    /// revoked one cannot pass for it.
    pub(crate) fn propose(
        &self,
        what: Proposed<'_>,
        group: &GroupId,
        epoch: u64,
        attempt: u32,
        crypto: &RustCrypto,
    ) -> Result<SignedProposal, SenderError> {
        let signer = AttemptSigner { key: &self.key, attempt };
        let (group, epoch, sender) = (group.clone(), GroupEpoch::from(epoch), SenderExtensionIndex::new(0));
        let msg = match what {
            Proposed::Add(kp) => {
                ExternalProposal::new_add::<OpenMlsRustCrypto>(kp.clone(), group, epoch, &signer, sender).ok()
            }
            Proposed::Remove(leaf) => {
                let leaf = LeafNodeIndex::new(leaf);
                ExternalProposal::new_remove::<OpenMlsRustCrypto>(leaf, group, epoch, &signer, sender).ok()
            }
        };
        let message = msg.and_then(|m| m.tls_serialize_detached().ok()).ok_or(SenderError::Proposal)?;
        // The reference: RefHash over the MLSMessage after its version
        // (wire format, content, signature: the AuthenticatedContent).
        let body = message.get(2..).ok_or(SenderError::Proposal)?;
        let reference = make_proposal_ref(body, CIPHERSUITE, crypto).map_err(|_| SenderError::Proposal)?;
        Ok(SignedProposal { reference: reference.as_slice().to_vec(), message })
    }
}

/// What an external proposal asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Proposed<'a> {
    /// Add the holder of this key package.
    Add(&'a KeyPackage),
    /// Remove the member in this leaf.
    Remove(u32),
}

/// Validates an op 26 body from `user` (DAVE.md §5): a KeyPackage that
/// openmls validates for MLS 1.0, with `user`'s 8-byte big-endian id as a
/// basic credential, ciphersuite 2 and the lifetime 0..2^64-1.
///
/// openmls's validation compares the lifetime with the system clock; with
/// the only lifetime accepted here that comparison cannot fail, so the
/// outcome does not depend on the time.
pub(crate) fn check_key_package(
    body: &[u8],
    user: Snowflake,
    crypto: &RustCrypto,
) -> Result<CheckedKeyPackage, SenderError> {
    let kp_in =
        guarded(|| KeyPackageIn::tls_deserialize_exact_bytes(body).ok()).ok_or(SenderError::KeyPackageUndecodable)?;
    let kp = kp_in.validate(crypto, ProtocolVersion::Mls10).map_err(|_| SenderError::KeyPackageInvalid)?;
    let credential = kp.leaf_node().credential();
    if credential.credential_type() != CredentialType::Basic
        || credential.serialized_content() != user.0.to_be_bytes().as_slice()
    {
        return Err(SenderError::KeyPackageCredential);
    }
    if kp.ciphersuite() != CIPHERSUITE {
        return Err(SenderError::KeyPackageCiphersuite);
    }
    let life = kp.life_time();
    if life.not_before() != 0 || life.not_after() != u64::MAX {
        return Err(SenderError::KeyPackageLifetime);
    }
    let reference = kp.hash_ref(crypto).map_err(|_| SenderError::KeyPackageInvalid)?.as_slice().to_vec();
    Ok(CheckedKeyPackage { key_package: kp, reference })
}

/// Runs an openmls decoder on client bytes.
///
/// tls_codec 0.4.2 checks a vector length prefix whose top bits are `11`
/// with a `debug_assert!` before it returns its error: with debug
/// assertions on (dev and test builds) such junk from a client would panic
/// inside openmls. The panic is contained here and counts as undecodable
/// input, as the error is in release builds.
pub(crate) fn guarded<T>(decode: impl FnOnce() -> Option<T>) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).ok().flatten()
}

/// Signs with the room key: RFC 6979 for attempt 0, hedged with a stream
/// drawn from the attempt number after that (still reproducible).
struct AttemptSigner<'a> {
    key: &'a SigningKey,
    attempt: u32,
}

impl Signer for AttemptSigner<'_> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        let signature: Signature = if self.attempt == 0 {
            self.key.try_sign(payload).map_err(|_| SignerError::SigningError)?
        } else {
            let mut rng = SplitMix(u64::from(self.attempt));
            self.key.try_sign_with_rng(&mut rng, payload).map_err(|_| SignerError::SigningError)?
        };
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_SECP256R1_SHA256
    }
}

/// SplitMix64: the extra input of a hedged RFC 6979 nonce. The nonce stays
/// secret through the key; this only has to differ between attempts.
struct SplitMix(u64);

impl RngCore for SplitMix {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), RandError> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for SplitMix {}
