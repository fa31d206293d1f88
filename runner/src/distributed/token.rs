//! The cluster token: how a LoadDensity worker proves to its master that it may join.
//!
//! With a token set on the master, a worker that announces itself as a LoadDensity worker
//! (`client_ready`) gets neither `ack` nor plan, but a challenge ([`CHALLENGE_MESSAGE`],
//! `{"challenge": <64 hex digits>}`, fresh random bytes). It answers with
//! [`AUTH_MESSAGE`], `{"proof": <hex HMAC-SHA256>}`, keyed by the token, over a domain tag, the
//! challenge and its own node id. Only then does the master admit it and send the plan. A wrong
//! or missing proof gets [`REFUSED_MESSAGE`], `{"reason": str}`. The token itself never
//! travels, and a proof is good for one challenge and one node id only.
//!
//! Locust workers cannot answer a challenge: a master with a token admits LoadDensity
//! workers only.

use hmac::Mac as _;

/// Master -> worker: prove you hold the token.
pub const CHALLENGE_MESSAGE: &str = "ld_challenge";
/// Worker -> master: the proof.
pub const AUTH_MESSAGE: &str = "ld_auth";
/// Master -> worker: not admitted (wrong proof, or no token where one is needed).
pub const REFUSED_MESSAGE: &str = "ld_refused";

/// What the proof covers besides the challenge and the node id (so a proof made for this
/// purpose is good for nothing else keyed by the same secret).
const DOMAIN: &[u8] = b"load-density cluster token v1\0";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A shared secret between a master and its workers. Its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken(String);

impl ClusterToken {
    /// A token from its text; `None` for an empty one (no token).
    pub fn new(text: impl Into<String>) -> Option<Self> {
        let text = text.into();
        (!text.is_empty()).then_some(Self(text))
    }

    /// The proof, as lowercase hex, that this token's holder answered `challenge` as
    /// `node_id`.
    pub fn prove(&self, challenge: &str, node_id: &str) -> String {
        hex(&self.mac(challenge, node_id).finalize().into_bytes())
    }

    /// Whether `proof` (hex) is this token's answer to `challenge` from `node_id` (compared
    /// in constant time).
    pub fn verify(&self, challenge: &str, node_id: &str, proof: &str) -> bool {
        match unhex(proof) {
            Some(bytes) => self.mac(challenge, node_id).verify_slice(&bytes).is_ok(),
            None => false,
        }
    }

    fn mac(&self, challenge: &str, node_id: &str) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(self.0.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(DOMAIN);
        mac.update(challenge.as_bytes());
        mac.update(b"\0");
        mac.update(node_id.as_bytes());
        mac
    }
}

impl std::fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterToken(<hidden>)")
    }
}

/// A fresh challenge: 32 random bytes as hex.
pub fn new_challenge() -> String {
    hex(&rand::random::<[u8; 32]>())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_token_challenge_and_node_only() {
        let token = ClusterToken::new("s3cret").expect("a token");
        let challenge = new_challenge();
        assert_eq!(challenge.len(), 64);
        let proof = token.prove(&challenge, "host_1");
        assert!(token.verify(&challenge, "host_1", &proof));
        assert!(!token.verify(&challenge, "host_2", &proof));
        assert!(!token.verify(&new_challenge(), "host_1", &proof));
        let other = ClusterToken::new("s3cret2").expect("a token");
        assert!(!other.verify(&challenge, "host_1", &proof));
        assert!(!token.verify(&challenge, "host_1", "zz"));
        assert!(!token.verify(&challenge, "host_1", ""));
        assert!(!proof.contains("s3cret"));
        assert_eq!(format!("{token:?}"), "ClusterToken(<hidden>)");
        assert!(ClusterToken::new("").is_none());
    }
}
