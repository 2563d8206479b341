//! SCIM bearer tokens: `phscim-<id>-<secret>`, the secret stored only as an argon2id PHC hash
//! (the same format PHP's `password_hash(..., PASSWORD_ARGON2ID)` writes,
//! docs/design.md#authentication-and-tokens).
//!
//! The id in the token selects one row, so one hash is verified. argon2 runs off the async
//! runtime and only on a cache miss; a cached token's row is re-read every few seconds, so
//! revocation and expiry take effect within seconds without re-running argon2.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{self, Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use sha2::{Digest, Sha256};

use crate::db::phabricator::Phid;
use crate::db::{Db, DbError, now, sidecar};

/// Token prefix.
pub const PREFIX: &str = "phscim";
/// Length of the random secret.
pub const SECRET_LEN: usize = 40;

/// Splits a token into its id and secret.
pub fn parse(token: &str) -> Option<(u32, &str)> {
    let rest = token.strip_prefix(PREFIX)?.strip_prefix('-')?;
    let (id, secret) = rest.split_once('-')?;
    if secret.len() != SECRET_LEN
        || !secret
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    {
        return None;
    }
    Some((id.parse().ok()?, secret))
}

/// Formats a token.
pub fn format(id: u32, secret: &str) -> String {
    format!("{PREFIX}-{id}-{secret}")
}

/// Memory cost of new hashes, in KiB (19 MiB), the same as the PHP side's `memory_cost`.
const HASH_M_COST: u32 = 19456;
/// Passes over memory of new hashes, the same as the PHP side's `time_cost`.
const HASH_T_COST: u32 = 2;
/// Lanes of new hashes: libsodium-built PHP supports only one (`threads`).
const HASH_P_COST: u32 = 1;

/// argon2id at OWASP's floor (m=19456 KiB, t=2, p=1), not PHP's defaults (m=65536, t=4): the
/// secret is 40 random characters (200 bits), which no guessing reaches however cheap a guess
/// is, so memory-hardness buys nothing here, while the service pays the cost: each
/// verification allocates `m` (at most two run at once), and with PHP's 64 MiB one cold token
/// check was the service's peak memory. PhabricatorScimTokenEngine::hashSecret() writes the
/// same parameters; verification reads them from the PHC string, so hashes written with other
/// parameters (PHP's defaults, by earlier versions) keep verifying.
fn argon2() -> Argon2<'static> {
    let params = Params::new(HASH_M_COST, HASH_T_COST, HASH_P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a secret into a PHC string.
pub fn hash_secret(secret: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Ok(argon2()
        .hash_password(secret.as_bytes(), &salt)?
        .to_string())
}

/// Verifies a secret against a PHC string (any argon2 variant and parameters it names).
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    verify_phc(secret, phc).unwrap_or(false)
}

/// What `PasswordVerifier::verify_password` does, but in memory from `argon2_memory`.
fn verify_phc(secret: &str, phc: &str) -> Option<bool> {
    let hash = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    // The output length comes from the hash, as in `verify_password`.
    let params = Params::try_from(&hash).ok()?;
    let (salt, expected) = (hash.salt?, hash.hash?);
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).ok()?;
    let mut memory = argon2_memory(params.block_count())?;
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(secret.as_bytes(), salt, out, &mut memory[..])
            .map_err(password_hash::Error::from)
    })
    .ok()?;
    // `Output`'s equality is constant-time.
    Some(computed == expected)
}

/// Room reserved for argon2's memory: 33 MiB, above glibc's largest mmap threshold (32 MiB).
const ARGON2_RESERVE_BLOCKS: usize = 33 * 1024;

/// Argon2's working memory, `blocks` KiB, reserved so that glibc maps it on its own and unmaps
/// it when the verification ends. glibc serves a request from mmap when it is above its mmap
/// threshold, but that threshold rises to the size of each mapped chunk freed (up to 32 MiB): a
/// plain 19 MiB buffer is mapped once, then taken from a malloc arena, and arenas (one per
/// blocking thread) keep and fragment what is freed (measured in the service: about 100 failed
/// tokens left 466 MiB resident, against 10 MiB this way). Reserving at least 33 MiB keeps it
/// a mapping of its own, and only the `blocks` written become resident. `None` when the
/// memory cannot be had (absurd parameters).
fn argon2_memory(blocks: usize) -> Option<Vec<Block>> {
    let mut memory = Vec::new();
    memory
        .try_reserve_exact(blocks.max(ARGON2_RESERVE_BLOCKS))
        .ok()?;
    memory.resize(blocks, Block::default());
    Some(memory)
}

/// A PHC hash nobody's secret matches, verified for unknown ids so that timing does not tell
/// which ids exist. Written by `hash_secret` (so with the parameters of new tokens) for a random
/// secret that was thrown away.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ysXheisBtk+MEkbHQqjusg$i9uiH77Z1sukPCZmu4SLOJDPhhx3YT91BODilSU8TXY";

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: u32,
    pub bot_phid: Phid,
}

/// Why authentication failed. The messages never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("missing or malformed bearer token")]
    Malformed,
    #[error("invalid, expired or revoked token")]
    Invalid,
    #[error("too many failed attempts; retry in {0} s")]
    RateLimited(u64),
    #[error(transparent)]
    Db(#[from] DbError),
}

struct Cached {
    token_id: u32,
    bot_phid: Phid,
    /// The PHC string the secret verified against.
    hash: String,
    checked: Instant,
}

/// Verifies bearer tokens with a cache and a per-address failure limit.
pub struct TokenVerifier {
    db: Db,
    recheck: Duration,
    failures_per_minute: u32,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    /// Tokens (by digest) that failed, with the hash their secret failed against (empty when
    /// there was no usable row): a repeat is refused without running argon2 again.
    wrong: Mutex<HashMap<[u8; 32], String>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    touched: Mutex<HashMap<u32, Instant>>,
    /// argon2 verifications run, real or dummy (tests check unknown ids cost one too).
    verifications: AtomicU64,
    /// One verification per token at a time: an IdP's first burst of parallel requests waits
    /// for the first verification instead of running argon2 (19 MiB each, 64 MiB for a hash at
    /// PHP's defaults) once per request.
    inflight: Mutex<HashMap<[u8; 32], std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// At most two argon2 runs at once, whatever the tokens: bounds memory and CPU.
    slots: tokio::sync::Semaphore,
    /// Checks of tokens not in the cache from addresses over the failure limit, one at a time
    /// (in arrival order): the identity provider behind an attacker's address still gets its
    /// token checked, while the attacker's guesses hold at most one of the two `slots`.
    blocked_checks: tokio::sync::Semaphore,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("recheck", &self.recheck)
            .finish_non_exhaustive()
    }
}

const CACHE_LIMIT: usize = 1024;

impl TokenVerifier {
    /// A verifier over `db`.
    pub fn new(db: Db, recheck: Duration, failures_per_minute: u32) -> Self {
        Self {
            db,
            recheck,
            failures_per_minute,
            cache: Mutex::new(HashMap::new()),
            wrong: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            verifications: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            slots: tokio::sync::Semaphore::new(2),
            blocked_checks: tokio::sync::Semaphore::new(1),
        }
    }

    /// How many argon2 verifications this verifier has run (dummy ones included).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verifies `secret` against `phc` off the async runtime, in the current span.
    /// `None` when the check could not run (the semaphore closed, the blocking task lost):
    /// not an answer about the secret, so the caller must not remember it as wrong.
    async fn run_verify(&self, secret: &str, phc: String) -> Option<bool> {
        let _slot = self.slots.acquire().await.ok()?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let s = secret.to_owned();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| verify_secret(&s, &phc)))
            .await
            .ok()
    }

    /// Checks a bearer token presented by `client`. A token the service has verified before
    /// (in the cache, however old the entry) is checked whatever the address's failures: other
    /// tokens' failures from the same address (an attacker behind the identity provider's
    /// egress or proxy) must not lock the identity provider out. Any other token from an
    /// address over the limit is refused at once when it cannot be a token or already failed
    /// against its row's hash, and otherwise checked one at a time (`blocked_checks`), without
    /// the dummy verification when it names no usable row.
    pub async fn verify(&self, token: &str, client: IpAddr) -> Result<Principal, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self.cache.lock().is_ok_and(|c| c.contains_key(&key));
        let blocked = if known { None } else { self.blocked(client) };
        let _one_blocked_check = match blocked {
            None => None,
            Some(wait) => {
                // A secret that failed against a real hash fails for good: no row read needed.
                let wrong_secret = self
                    .wrong
                    .lock()
                    .is_ok_and(|w| w.get(&key).is_some_and(|h| !h.is_empty()));
                if wrong_secret || parse(token).is_none() {
                    self.record_failure(client);
                    return Err(AuthError::RateLimited(wait));
                }
                match self.blocked_checks.acquire().await {
                    Ok(permit) => Some(permit),
                    Err(_) => return Err(AuthError::RateLimited(wait)),
                }
            }
        };
        match self.verify_inner(token, key, blocked.is_none()).await {
            Ok(p) => Ok(p),
            Err(AuthError::Db(e)) => Err(AuthError::Db(e)),
            Err(e) => {
                self.record_failure(client);
                Err(match blocked {
                    Some(wait) => AuthError::RateLimited(wait),
                    None => e,
                })
            }
        }
    }

    /// Counts a request without a token as a failed attempt of `client`; the error to answer
    /// with (rate-limited when the address is over the limit).
    pub fn missing_token(&self, client: IpAddr) -> AuthError {
        let blocked = self.blocked(client);
        self.record_failure(client);
        match blocked {
            Some(wait) => AuthError::RateLimited(wait),
            None => AuthError::Missing,
        }
    }

    /// The principal of a token checked less than `recheck` ago.
    fn cached_principal(&self, key: &[u8; 32]) -> Result<Option<Principal>, AuthError> {
        let cache = self.cache.lock().map_err(|_| AuthError::Invalid)?;
        Ok(cache
            .get(key)
            .filter(|c| c.checked.elapsed() < self.recheck)
            .map(|c| Principal {
                token_id: c.token_id,
                bot_phid: c.bot_phid.clone(),
            }))
    }

    /// The lock that lets one check of a token run at a time.
    fn gate(&self, key: [u8; 32]) -> Result<std::sync::Arc<tokio::sync::Mutex<()>>, AuthError> {
        let mut m = self.inflight.lock().map_err(|_| AuthError::Invalid)?;
        if m.len() >= CACHE_LIMIT {
            m.clear();
        }
        Ok(m.entry(key)
            .or_insert_with(|| std::sync::Arc::new(tokio::sync::Mutex::new(())))
            .clone())
    }

    /// The check behind `verify`; `equalise` runs the dummy verification for unusable rows (an
    /// address over the limit learns nothing from timing it could not learn from the ids
    /// being sequential, and must not make the service run argon2 for nothing).
    async fn verify_inner(
        &self,
        token: &str,
        key: [u8; 32],
        equalise: bool,
    ) -> Result<Principal, AuthError> {
        let fresh = self.cached_principal(&key)?;
        if let Some(p) = fresh {
            self.touch(p.token_id);
            return Ok(p);
        }
        let gate = self.gate(key)?;
        // The wait for the gate and the read share one limit: when the database hangs, each
        // waiter would otherwise take its turn at a read that runs out of time.
        let deadline = tokio::time::Instant::now() + self.db.timeouts.statement;
        let _one_at_a_time = tokio::time::timeout_at(deadline, gate.lock())
            .await
            .map_err(|_| DbError::Timeout("waiting for a token check"))?;
        let fresh = self.cached_principal(&key)?;
        if let Some(p) = fresh {
            return Ok(p);
        }
        let Some((id, secret)) = parse(token) else {
            return Err(AuthError::Malformed);
        };
        let row = self
            .db
            .within(deadline, "the token check", async |conn| {
                sidecar::get_token(conn, &self.db.t, id).await
            })
            .await?;
        let ts = now();
        let usable = row.as_ref().filter(|r| {
            r.date_revoked.is_none()
                && r.date_expires.is_none_or(|e| e > ts)
                && r.bot_disabled == Some(false)
                && !r.token_hash.is_empty()
        });
        let Some(row) = usable else {
            self.forget(&key);
            // Repeats are refused without the dummy verification, as repeats of a wrong secret
            // are (below), so that timing still does not tell which ids exist.
            if equalise && !self.known_wrong(&key, None) {
                // Equalise timing with a real verification.
                let _ = self.run_verify(secret, DUMMY_HASH.to_owned()).await;
            }
            self.remember_wrong(key, String::new());
            return Err(AuthError::Invalid);
        };
        let cached_hash_matches = {
            let cache = self.cache.lock().map_err(|_| AuthError::Invalid)?;
            cache
                .get(&key)
                .is_some_and(|c| c.hash == row.token_hash && c.token_id == row.id)
        };
        // A secret argon2 refused for this hash is refused again without running it: repeating
        // one wrong token costs a row read, not 21 ms of CPU and 19 MiB.
        if self.known_wrong(&key, Some(&row.token_hash)) {
            return Err(AuthError::Invalid);
        }
        if !cached_hash_matches {
            match self.run_verify(secret, row.token_hash.clone()).await {
                Some(true) => {}
                Some(false) => {
                    self.forget(&key);
                    self.remember_wrong(key, row.token_hash.clone());
                    return Err(AuthError::Invalid);
                }
                // Refused this time, but not remembered: the secret may well be right.
                None => return Err(AuthError::Invalid),
            }
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(
                key,
                Cached {
                    token_id: row.id,
                    bot_phid: row.bot_phid.clone(),
                    hash: row.token_hash.clone(),
                    checked: Instant::now(),
                },
            );
        }
        self.touch(row.id);
        Ok(Principal {
            token_id: row.id,
            bot_phid: row.bot_phid.clone(),
        })
    }

    /// Whether the token with digest `key` failed before: against `hash`, or (for `None`)
    /// against anything.
    fn known_wrong(&self, key: &[u8; 32], hash: Option<&str>) -> bool {
        self.wrong.lock().is_ok_and(|w| {
            w.get(key)
                .is_some_and(|h| hash.is_none_or(|hash| h.as_str() == hash))
        })
    }

    /// Remembers that the token with digest `key` failed against `hash` (empty: no usable row).
    fn remember_wrong(&self, key: [u8; 32], hash: String) {
        if let Ok(mut wrong) = self.wrong.lock() {
            if wrong.len() >= CACHE_LIMIT {
                wrong.clear();
            }
            wrong.insert(key, hash);
        }
    }

    fn forget(&self, key: &[u8; 32]) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key);
        }
    }

    /// Records use at most once a minute per token, off the request path.
    fn touch(&self, id: u32) {
        let due = match self.touched.lock() {
            Ok(mut t) => {
                let due = t
                    .get(&id)
                    .is_none_or(|last| last.elapsed() > Duration::from_secs(60));
                if due {
                    t.insert(id, Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if due {
            let db = self.db.clone();
            tokio::spawn(async move {
                if let Ok(mut conn) = db.pool.acquire().await {
                    let _ =
                        sidecar::touch_token(&mut crate::db::Conns::of(&db, &mut conn), &db.t, id)
                            .await;
                }
            });
        }
    }

    fn blocked(&self, client: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().ok()?;
        let (count, since) = failures.get(&client)?;
        let elapsed = since.elapsed();
        if elapsed < Duration::from_secs(60) && *count >= self.failures_per_minute {
            Some(60 - elapsed.as_secs())
        } else {
            None
        }
    }

    fn record_failure(&self, client: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() > 10_000 {
                failures.retain(|_, (_, since)| since.elapsed() < Duration::from_secs(60));
            }
            let entry = failures.entry(client).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= Duration::from_secs(60) {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_format_round_trips() {
        let secret = crate::db::phabricator::random_chars(SECRET_LEN);
        let t = format(42, &secret);
        assert_eq!(parse(&t), Some((42, secret.as_str())));
        assert_eq!(parse("phscim-x-abc"), None);
        assert_eq!(parse("Bearer phscim-1-abc"), None);
        assert_eq!(parse(&format!("phscim-1-{}", "A".repeat(40))), None);
    }

    #[test]
    fn hash_verifies_and_matches_php_parameters() {
        let h = hash_secret("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_secret("s3cret", &h));
        assert!(!verify_secret("other", &h));
        assert!(!verify_secret("s3cret", DUMMY_HASH));
        assert!(!verify_secret("s3cret", "garbage"));
    }

    /// The dummy hash costs what a real token's check costs: same algorithm and parameters.
    #[test]
    fn dummy_hash_has_the_parameters_of_new_hashes() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let h = hash_secret("s3cret").unwrap();
        let real = PasswordHash::new(&h).unwrap();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.map(|o| o.len()), real.hash.map(|o| o.len()));
    }

    /// Verification follows the PHC string: variant, version, parameters, output length.
    #[test]
    fn other_variants_versions_and_lengths_verify() {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        for (algorithm, version, out_len) in [
            (Algorithm::Argon2i, Version::V0x10, 32),
            (Algorithm::Argon2d, Version::V0x13, 32),
            (Algorithm::Argon2id, Version::V0x13, 64),
        ] {
            let params = Params::new(1024, 1, 1, Some(out_len)).unwrap();
            let h = Argon2::new(algorithm, version, params)
                .hash_password(b"s3cret", &salt)
                .unwrap()
                .to_string();
            assert!(verify_secret("s3cret", &h), "{h}");
            assert!(!verify_secret("s3cres", &h), "{h}");
        }
    }

    /// Tokens hashed before the switch to m=19456,t=2 (PHP's defaults, m=65536,t=4) keep
    /// verifying: the parameters come from the PHC string. This one was written by PHP's
    /// `password_hash($secret, PASSWORD_ARGON2ID, ['memory_cost' => 65536, 'time_cost' => 4,
    /// 'threads' => 1])`.
    #[test]
    fn hashes_at_phps_default_parameters_keep_verifying() {
        let legacy = "$argon2id$v=19$m=65536,t=4,p=1$OXoubWtVM3prU2hoY3hTUQ$5vePbveeKtH/o4F5eySW8kI3xrMcrUkgh3dHIWwNC60";
        assert!(verify_secret("legacy-secret-hashed-by-php", legacy));
        assert!(!verify_secret("legacy-secret-hashed-by-phq", legacy));
    }
}

/// Issues a token for `bot_phid`: the row, then the hash of a fresh secret. Returns the token,
/// which exists nowhere else afterwards.
pub async fn issue(
    db: &Db,
    bot_phid: &str,
    label: &str,
    expires: Option<u32>,
) -> Result<(u32, String), IssueError> {
    let secret = crate::db::phabricator::random_chars(SECRET_LEN);
    let s = secret.clone();
    let hash = tokio::task::spawn_blocking(move || hash_secret(&s))
        .await
        .map_err(|_| IssueError::Hash)?
        .map_err(|_| IssueError::Hash)?;
    let mut tx = db.begin().await?;
    let token = sidecar::NewToken {
        label,
        bot_phid,
        expires,
    };
    let id = sidecar::insert_token(&mut crate::db::Conns::of(db, &mut tx), &db.t, &token).await?;
    sidecar::set_token_hash(&mut crate::db::Conns::of(db, &mut tx), &db.t, id, &hash).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok((id, format(id, &secret)))
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("hashing failed")]
    Hash,
    #[error(transparent)]
    Db(#[from] DbError),
}
