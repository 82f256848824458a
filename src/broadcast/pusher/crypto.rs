//! End-to-end encrypted channels (`private-encrypted-*`), research/wire-formats.md §2e.
//!
//! Owns: the per-channel key (SHA-256 of the channel name followed by the 32-byte master key),
//! NaCl `crypto_secretbox` (XSalsa20-Poly1305; MAC first, as tweetnacl and libsodium lay it out)
//! under a 24-byte nonce derived from the channel's key and the unit's idempotency key
//! ([`derived_nonce`]: a retry is byte-identical, and a different event, having a different
//! unit key, gets a different nonce), and the `data` string subscribers decrypt:
//! `{"nonce":"<base64>","ciphertext":"<base64>"}`. pusher-js derives the same key from the
//! `shared_secret` the app's channel authorization returns. Does not own: deciding which
//! channels are encrypted or what goes in a request (`batch`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Channels whose events are encrypted end to end.
pub(crate) const ENCRYPTED_PREFIX: &str = "private-encrypted-";

/// Whether `channel` is an end-to-end encrypted channel.
pub(crate) fn is_encrypted(channel: &str) -> bool {
    channel.starts_with(ENCRYPTED_PREFIX)
}

/// The connection's `encryption_master_key_base64`, decoded.
#[derive(Clone)]
pub(crate) struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(****)")
    }
}

impl MasterKey {
    /// Decodes standard base64 of exactly 32 bytes.
    pub(crate) fn from_base64(text: &str) -> Result<MasterKey, String> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|e| format!("not base64: {e}"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("{} bytes, need 32", b.len()))?;
        Ok(MasterKey(key))
    }

    /// The channel's shared secret: SHA-256(channel name ‖ master key).
    pub(crate) fn channel_key(&self, channel: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(channel.as_bytes());
        h.update(self.0);
        h.finalize().into()
    }
}

/// The nonce for `unit_key` (the unit's idempotency key, which covers connection, envelope
/// id, event name, payload and channel) on `channel`: the first 24 bytes of
/// HMAC-SHA256(channel key, unit key). Every attempt of a unit sends the same bytes; two
/// different plaintexts never share a nonce under one channel key, because the unit key hashes
/// the plaintext.
pub(crate) fn derived_nonce(master: &MasterKey, channel: &str, unit_key: &str) -> [u8; 24] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&master.channel_key(channel))
        .expect("HMAC takes any key");
    mac.update(unit_key.as_bytes());
    let tag = mac.finalize().into_bytes();
    std::array::from_fn(|i| tag[i])
}

/// The `data` string for `plaintext` (the JSON-encoded payload) on `channel`.
pub(crate) fn encrypt(
    master: &MasterKey,
    channel: &str,
    plaintext: &[u8],
    nonce: [u8; 24],
) -> String {
    let cipher = XSalsa20Poly1305::new(&master.channel_key(channel).into());
    let boxed = cipher
        .encrypt(&nonce.into(), plaintext)
        .expect("secretbox encryption cannot fail for in-memory input");
    // Base64 needs no JSON escaping; the order is the official libraries'.
    format!(
        r#"{{"nonce":"{}","ciphertext":"{}"}}"#,
        B64.encode(nonce),
        B64.encode(boxed)
    )
}

/// Opens a `data` string made by [`encrypt`] (what pusher-js does); `None` if it does not open.
/// Tests check encryption with it; herald itself never decrypts.
#[cfg(test)]
pub(crate) fn decrypt(master: &MasterKey, channel: &str, data: &str) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Boxed {
        nonce: String,
        ciphertext: String,
    }
    let b: Boxed = serde_json::from_str(data).ok()?;
    let nonce: [u8; 24] = B64.decode(b.nonce).ok()?.try_into().ok()?;
    let boxed = B64.decode(b.ciphertext).ok()?;
    XSalsa20Poly1305::new(&master.channel_key(channel).into())
        .decrypt(&nonce.into(), boxed.as_slice())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        // The fixture's key: bytes 32..63.
        MasterKey::from_base64("ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=").unwrap()
    }

    #[test]
    fn matches_tweetnacl_as_the_official_library_uses_it() {
        // tests/fixtures/pusher_requests.json, case "encrypted": pusher-http-node with the
        // nonce fixed to bytes 0..23.
        let nonce: [u8; 24] = std::array::from_fn(|i| i as u8);
        let data = encrypt(
            &master(),
            "private-encrypted-orders.1",
            br#"{"order_id":1}"#,
            nonce,
        );
        assert_eq!(
            data,
            r#"{"nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX","ciphertext":"eKid0gmw5ICsDJ9IDvv/f9lvu13ZtAVfu1lmhEZ5"}"#
        );
    }

    #[test]
    fn round_trips_only_on_its_own_channel() {
        let nonce = derived_nonce(&master(), "private-encrypted-a", "herald-1");
        let data = encrypt(&master(), "private-encrypted-a", b"{}", nonce);
        assert_eq!(
            decrypt(&master(), "private-encrypted-a", &data).as_deref(),
            Some(&b"{}"[..])
        );
        assert_eq!(decrypt(&master(), "private-encrypted-b", &data), None);
    }

    #[test]
    fn nonces_are_the_same_per_unit_and_differ_across_units_and_channels() {
        let n = |c: &str, k: &str| derived_nonce(&master(), c, k);
        assert_eq!(
            n("private-encrypted-a", "herald-1"),
            n("private-encrypted-a", "herald-1")
        );
        assert_ne!(
            n("private-encrypted-a", "herald-1"),
            n("private-encrypted-a", "herald-2")
        );
        assert_ne!(
            n("private-encrypted-a", "herald-1"),
            n("private-encrypted-b", "herald-1")
        );
        let other = MasterKey::from_base64(&B64.encode([7u8; 32])).unwrap();
        assert_ne!(
            n("private-encrypted-a", "herald-1"),
            derived_nonce(&other, "private-encrypted-a", "herald-1")
        );
    }

    #[test]
    fn master_key_must_be_32_bytes_of_base64() {
        assert!(
            MasterKey::from_base64("c2hvcnQ=")
                .unwrap_err()
                .contains("need 32")
        );
        assert!(MasterKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{:?}", master()), "MasterKey(****)");
    }
}
