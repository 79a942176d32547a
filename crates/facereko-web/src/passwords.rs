//! Password checks without unbounded memory: at most one Argon2 computation per core, each in a working
//! memory that is kept and reused.
//!
//! An Argon2id check of FaceReko's hashes needs 19 MiB of working memory. Allocated per check, that memory
//! stays resident after it is freed (the allocator keeps it in the arena of whichever thread ran the check),
//! so a burst of sign-ins left several hundred MB behind even with the checks queued one per core; a door
//! controller on a Pi cannot spare that. Here each permit owns one buffer, grown once to the largest cost a
//! stored hash asks for and reused by every later check. Hashes are password-auth's PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`); anything else is checked by password-auth itself.

use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::error::AppError;

/// Working memories, one per permit.
struct Pool {
    permits: tokio::sync::Semaphore,
    free: Mutex<Vec<Vec<Block>>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Pool {
            permits: tokio::sync::Semaphore::new(cores),
            free: Mutex::new(Vec::new()),
        }
    })
}

/// Runs CPU-heavy password work on the blocking pool, one per core at a time, with a reusable working
/// memory.
async fn bounded<T: Send + 'static>(
    work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
) -> Result<T, AppError> {
    let pool = pool();
    let _permit = pool
        .permits
        .acquire()
        .await
        .map_err(|e| AppError::Internal(format!("password check: {e}")))?;
    let mut memory = pool
        .free
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .pop()
        .unwrap_or_default();
    let (result, memory) = tokio::task::spawn_blocking(move || {
        let r = work(&mut memory);
        (r, memory)
    })
    .await
    .map_err(|e| AppError::Internal(format!("password check task: {e}")))?;
    pool.free
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(memory);
    Ok(result)
}

/// Whether `password` matches the stored PHC `hash`.
pub(crate) async fn verify(password: String, hash: String) -> Result<bool, AppError> {
    bounded(move |memory| verify_with(&password, &hash, memory)).await
}

/// A new PHC hash of `password` (password-auth's Argon2id defaults), one per core at a time.
pub(crate) async fn hash(password: String) -> Result<String, AppError> {
    bounded(move |_| facereko_store::hash_password(&password)).await
}

fn verify_with(password: &str, hash: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let algorithm = match Algorithm::try_from(parsed.algorithm) {
        Ok(a) => a,
        // Not Argon2: whatever password-auth accepts.
        Err(_) => return facereko_store::verify_password(password, hash),
    };
    let (Ok(params), Some(salt), Some(expected)) =
        (Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or_default();
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    if argon2
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .is_err()
    {
        return false;
    }
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|got| got == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_agree_with_password_auth_and_reuse_their_memory() {
        let hash = facereko_store::hash_password("correct horse");
        let mut memory = Vec::new();
        assert!(verify_with("correct horse", &hash, &mut memory));
        let grown = memory.len();
        assert_eq!(grown, 19456, "19 MiB of 1 KiB blocks for the default cost");
        assert!(!verify_with("wrong horse", &hash, &mut memory));
        assert_eq!(memory.len(), grown, "reused, not grown again");
        assert!(!verify_with("correct horse", "not a hash", &mut memory));
        let mut tampered = hash.clone();
        tampered.pop();
        tampered.push(if hash.ends_with('A') { 'B' } else { 'A' });
        assert!(!verify_with("correct horse", &tampered, &mut memory));
    }
}
