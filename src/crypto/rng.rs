//! The RustCrypto provider's user-space CSPRNG ([`crate::RandomSource::UserSpace`]).
//!
//! A per-thread ChaCha20 generator with fast key erasure (D. J. Bernstein, "Fast-key-
//! erasure random-number generators", 2017):
//!
//! - **Seeding.** The 256-bit key comes from the OS RNG (`getrandom`) on first use in a
//!   thread, after every [`RESEED_AFTER`] bytes of output, and whenever the process id
//!   differs from the one recorded at seeding.
//! - **Generation.** A refill runs ChaCha20 under the current key with a zero nonce and
//!   counter for [`BLOCK`] bytes; the first 32 replace the key at once, the rest are
//!   buffered output. Each request takes the next buffered bytes and overwrites them with
//!   zeros as it takes them. A key is therefore used for exactly one refill, so the fixed
//!   nonce never repeats under a key, and the state after a request holds nothing that
//!   produced earlier outputs (backtracking resistance): only the next key and output not
//!   yet handed out.
//! - **Fork safety.** A forked child inherits the parent's state; comparing
//!   `std::process::id()` with the pid recorded at seeding on *every* request makes the
//!   child reseed before its first output, so parent and child never emit the same
//!   bytes. (A process id is reused only after its process has exited, so a grandchild
//!   can inherit a state whose pid matches only once that pid's owner is gone, and that
//!   owner emits nothing more.) Threads never share a state.
//! - **Large requests** (over [`MAX_REQUEST`] bytes) and a re-entrant use go straight to
//!   the OS RNG.
//! - **Failure.** If the OS RNG fails, the request fails ([`Error::Rng`]); the generator
//!   never runs unseeded.
//!
//! What it does not defend against: a VM snapshot restored twice within one process
//! (the pid does not change). Deployments that clone running VMs should keep the default
//! [`crate::RandomSource::OperatingSystem`], or use `aws-lc`, whose DRBG also detects
//! snapshot restores.

use std::cell::RefCell;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroizing;

use crate::error::Error;

/// Output after which the key is refreshed from the OS RNG.
pub(crate) const RESEED_AFTER: u64 = 1 << 20;
/// Largest request served from user space.
pub(crate) const MAX_REQUEST: usize = 128;
/// Keystream bytes per refill: a 32-byte key and 480 bytes of output.
const BLOCK: usize = 512;
const OUT: usize = BLOCK - 32;

struct State {
    key: Zeroizing<[u8; 32]>,
    /// Output not yet handed out is `out[pos..]`; `out[..pos]` is zeros.
    out: Zeroizing<[u8; OUT]>,
    pos: usize,
    pid: u32,
    generated: u64,
}

impl State {
    fn refill(&mut self) {
        let mut ks = Zeroizing::new([0u8; BLOCK]);
        let mut cipher = ChaCha20::new(&(*self.key).into(), &[0u8; 12].into());
        cipher.apply_keystream(ks.as_mut_slice());
        let (next_key, out) = ks.split_at(32);
        self.key.copy_from_slice(next_key);
        self.out.copy_from_slice(out);
        self.pos = 0;
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn reseed(pid: u32) -> Result<State, Error> {
    let mut key = Zeroizing::new([0u8; 32]);
    super::fill_random(key.as_mut_slice())?;
    Ok(State {
        key,
        out: Zeroizing::new([0u8; OUT]),
        pos: OUT,
        pid,
        generated: 0,
    })
}

/// Fills `buf` from this thread's generator.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), Error> {
    if buf.len() > MAX_REQUEST {
        return super::fill_random(buf);
    }
    STATE.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return super::fill_random(buf);
        };
        let pid = std::process::id();
        let stale = match slot.as_ref() {
            Some(s) => s.pid != pid || s.generated >= RESEED_AFTER,
            None => true,
        };
        if stale {
            // Drop the old state first so a failed reseed leaves nothing usable.
            *slot = None;
            *slot = Some(reseed(pid)?);
        }
        let Some(state) = slot.as_mut() else {
            return Err(Error::Rng);
        };
        if OUT - state.pos < buf.len() {
            state.refill();
        }
        let end = state.pos + buf.len();
        let taken = state.out.get_mut(state.pos..end).ok_or(Error::Rng)?;
        buf.copy_from_slice(taken);
        taken.fill(0);
        state.pos = end;
        state.generated = state
            .generated
            .saturating_add(u64::try_from(buf.len()).unwrap_or(u64::MAX));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_differ_are_erased_once_served_and_the_key_moves_on() {
        let mut a = [0u8; 44];
        let mut b = [0u8; 44];
        fill(&mut a).unwrap();
        let key_after_a = STATE.with(|s| *s.borrow().as_ref().unwrap().key);
        fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 44]);
        // The output is not the key that produced it, nor the next key.
        assert_ne!(&a[..32], &key_after_a[..]);
        STATE.with(|s| {
            let s = s.borrow();
            let st = s.as_ref().unwrap();
            assert!(
                st.out[..st.pos].iter().all(|&x| x == 0),
                "served bytes kept"
            );
            assert!(st.pos >= 88);
        });
        // Draining the buffer forces a refill under a new key.
        for _ in 0..20 {
            fill(&mut a).unwrap();
        }
        let key_now = STATE.with(|s| *s.borrow().as_ref().unwrap().key);
        assert_ne!(key_now, key_after_a);
    }

    #[test]
    fn a_changed_pid_or_exhausted_budget_reseeds() {
        let mut x = [0u8; 16];
        fill(&mut x).unwrap();
        // Pretend this state was inherited from another process.
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let st = s.as_mut().unwrap();
            st.pid = st.pid.wrapping_add(1);
            st.generated = 1000;
        });
        fill(&mut x).unwrap();
        STATE.with(|s| {
            let s = s.borrow();
            let st = s.as_ref().unwrap();
            assert_eq!(st.pid, std::process::id());
            assert_eq!(st.generated, 16, "reseeded, then counted one request");
        });
        STATE.with(|s| s.borrow_mut().as_mut().unwrap().generated = RESEED_AFTER);
        fill(&mut x).unwrap();
        STATE.with(|s| assert_eq!(s.borrow().as_ref().unwrap().generated, 16));
    }

    #[test]
    fn the_output_is_chacha20_under_the_erased_key() {
        // Known state in, known output out: ChaCha20(key, nonce 0) keystream bytes
        // 32..48, and the next key is bytes 0..32.
        let key = [7u8; 32];
        STATE.with(|s| {
            *s.borrow_mut() = Some(State {
                key: Zeroizing::new(key),
                out: Zeroizing::new([0u8; OUT]),
                pos: OUT,
                pid: std::process::id(),
                generated: 0,
            })
        });
        let mut out = [0u8; 16];
        fill(&mut out).unwrap();
        let mut next = [0u8; 16];
        fill(&mut next).unwrap();
        let mut ks = [0u8; BLOCK];
        ChaCha20::new(&key.into(), &[0u8; 12].into()).apply_keystream(&mut ks);
        assert_eq!(out, ks[32..48]);
        assert_eq!(next, ks[48..64]);
        STATE.with(|s| assert_eq!(&*s.borrow().as_ref().unwrap().key, &ks[..32]));
    }

    #[test]
    fn large_requests_and_other_threads_are_served() {
        let mut big = vec![0u8; 4096];
        fill(&mut big).unwrap();
        assert!(big.iter().any(|&b| b != 0));
        let other = std::thread::spawn(|| {
            let mut v = [0u8; 32];
            fill(&mut v).unwrap();
            v
        })
        .join()
        .unwrap();
        let mut mine = [0u8; 32];
        fill(&mut mine).unwrap();
        assert_ne!(other, mine);
    }
}
