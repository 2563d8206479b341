//! Writers and readers of Phabricator's own tables, one module per table family, named after
//! the Phorge DAO they mirror. Each function takes the open transaction's connection.

pub mod edge;
pub mod external;
mod phid;
pub mod project;
pub mod user;
pub mod worker;
pub mod xaction;

use rand::Rng;
use sha1::{Digest, Sha1};

pub use phid::{Phid, PhidKind};

/// Phabricator's random alphabet for PHIDs and secrets: `a-z` and `2-7` (lower-case base32),
/// `Filesystem::readRandomCharacters` (docs/phabricator-tables.md#phids-and-random-strings).
const RANDOM_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// `len` random characters of Phabricator's alphabet.
pub fn random_chars(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(RANDOM_ALPHABET[rng.gen_range(0..RANDOM_ALPHABET.len())]))
        .collect()
}

/// A new PHID of a four-letter type: `PHID-USER-<20>` (`PhabricatorPHID::generateNewPHID`).
/// Rows phab-scim writes take a typed [`Phid::new`]; this serves any type (a test's session).
pub fn new_phid(kind: &str) -> String {
    format!("PHID-{kind}-{}", random_chars(20))
}

/// A new transaction PHID: `PHID-XACT-USER-<15>` ([`Phid::new_xaction`]).
pub fn new_xaction_phid(object_kind: &str) -> String {
    format!("PHID-XACT-{object_kind}-{}", random_chars(15))
}

/// `PhabricatorHash::digestForIndex`: SHA-1 of the bytes; the low 6 bits of each of the first
/// 12 digest bytes index `0-9a-zA-Z._` (docs/phabricator-tables.md#digestforindex).
pub fn digest_for_index(input: &str) -> String {
    const MAP: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._";
    let digest = Sha1::digest(input.as_bytes());
    digest
        .iter()
        .take(12)
        .map(|b| char::from(MAP[usize::from(b & 0x3F)]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_phabricator() {
        // The reference rows: this PHID's identifier hash is `5A9oCy_YFMc9`.
        assert_eq!(
            digest_for_index("PHID-USER-af4fgdh6y6lyuy744ofh"),
            "5A9oCy_YFMc9"
        );
    }

    #[test]
    fn phids_have_phabricator_shape() {
        let p = new_phid("USER");
        assert_eq!(p.len(), 30);
        assert!(p.starts_with("PHID-USER-"));
        assert!(p[10..].bytes().all(|b| RANDOM_ALPHABET.contains(&b)));
        assert_eq!(new_xaction_phid("USER").len(), 30);
    }
}
