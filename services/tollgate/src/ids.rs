//! Request ids: 48 bits of Unix milliseconds followed by 80 bits from a per-thread generator
//! seeded by the OS (minting one costs no system call). Time-ordered like UUIDv7, so the request
//! log's primary key grows at its right edge instead of touching a random page per insert.
//!
//! The 80 bits are a keyed hash (SipHash, with a secret key drawn per thread) of a per-thread
//! counter. Tenants see their own request ids: an invertible mix of the counter would let one
//! recover how many ids the gateway minted between two of its requests, that is, count other
//! tenants' traffic. A keyed hash reveals nothing without its key.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use tollgate_domain::RequestId;

thread_local! {
    static STATE: Cell<(u64, u64)> = Cell::new(seed());
    /// The secret key of this thread's ids (std draws it from the OS).
    static KEY: RandomState = RandomState::new();
}

fn seed() -> (u64, u64) {
    let mut buf = [0u8; 16];
    if getrandom::fill(&mut buf).is_err() {
        // No OS randomness: fall back to time and thread identity (uniqueness, not secrecy).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf = nanos.to_le_bytes();
    }
    let (a, b) = buf.split_at(8);
    let mut x = [0u8; 8];
    let mut y = [0u8; 8];
    x.copy_from_slice(a);
    y.copy_from_slice(b);
    (u64::from_le_bytes(x), u64::from_le_bytes(y) | 1)
}

/// A fresh identifier with `prefix` (`ten_`, `key_`): the same 128 time-ordered bits as request
/// ids.
pub fn new_id(prefix: &str) -> String {
    let id = new_request_id();
    format!("{prefix}{}", &id.as_str()["req_".len()..])
}

/// Random bytes from the OS (for key secrets), or an error if it has none to give.
pub fn os_random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf)?;
    Ok(buf)
}

/// A fresh request id.
pub fn new_request_id() -> RequestId {
    STATE.with(|s| {
        let (counter, stream) = s.get();
        let next = counter.wrapping_add(stream);
        s.set((next, stream));
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            & 0xffff_ffff_ffff;
        let (a, b) = KEY.with(|k| (k.hash_one(next), k.hash_one(!next)));
        let hi = (ms << 16) | (a & 0xffff);
        let lo = b;
        RequestId::from_random((u128::from(hi) << 64) | u128::from(lo))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            assert!(seen.insert(super::new_request_id()));
        }
    }

    #[test]
    fn ids_are_time_ordered() {
        let a = super::new_request_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_request_id();
        assert!(a.as_str()[..16] < b.as_str()[..16], "{a} then {b}");
    }
}
