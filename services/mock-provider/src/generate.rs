//! Deterministic "model": token counting, generated text and embedding vectors.
//!
//! A token is a whitespace-separated word (`str::split_whitespace`). Generated word `i` (0-based)
//! is `tok{i}`; the text joins words with single spaces.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Default length of the generated text, in words.
pub const DEFAULT_WORDS: u64 = 16;
/// Hard cap on generated words per choice.
pub const MAX_WORDS: u64 = 4096;

/// Number of tokens (whitespace-separated words) in `text`.
pub fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// How much one choice generates, and why it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    pub words: u64,
    pub finish_reason: &'static str,
}

impl Generation {
    /// `limit` is `max_completion_tokens` (else `max_tokens`); `scripted` is the `tokens=N`
    /// directive. Without the directive the text is `limit` words (16 when absent); with it, N
    /// words. `finish_reason` is `length` when the limit (or the 4096 cap) cut it short, which
    /// includes "the limit was reached" when there is no directive.
    pub fn new(limit: Option<u64>, scripted: Option<u64>) -> Self {
        let (words, limited) = match (scripted, limit) {
            (None, None) => (DEFAULT_WORDS, false),
            (None, Some(limit)) => (limit, true),
            (Some(natural), None) => (natural, false),
            (Some(natural), Some(limit)) if natural > limit => (limit, true),
            (Some(natural), Some(_)) => (natural, false),
        };
        let (words, limited) = if words > MAX_WORDS {
            (MAX_WORDS, true)
        } else {
            (words, limited)
        };
        Self {
            words,
            finish_reason: if limited { "length" } else { "stop" },
        }
    }

    /// The full generated text: `tok0 tok1 … tok{n-1}`.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.words as usize * 7);
        for i in 0..self.words {
            push_word(&mut text, i, i + 1 == self.words);
        }
        text
    }
}

/// Appends word `i`, followed by a space unless it is the `last` one. Concatenating the stream
/// deltas therefore gives exactly the non-streamed text.
pub fn push_word(out: &mut String, i: u64, last: bool) {
    // Writing to a String cannot fail.
    let _ = write!(out, "tok{i}");
    if !last {
        out.push(' ');
    }
}

/// Seconds since the Unix epoch, for `created`.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// FNV-1a, 64 bit: a stable hash of an embedding input item.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A deterministic `dimensions`-long vector for an input whose hash is `seed`: values in
/// `[-1, 1]` with 4 decimals, drawn from SplitMix64.
pub fn embedding(seed: u64, dimensions: usize) -> Vec<f32> {
    let mut state = seed;
    (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // 0..=20000 maps to -1.0000..=1.0000; the cast is exact (< 2^24).
            let step = (z % 20_001) as i32 - 10_000;
            step as f32 / 10_000.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whitespace_separated_words() {
        assert_eq!(count_words(""), 0);
        assert_eq!(count_words("  hello   big\tworld\n"), 3);
    }

    #[test]
    fn generation_length_and_finish_reason() {
        let g = |limit, scripted| {
            let g = Generation::new(limit, scripted);
            (g.words, g.finish_reason)
        };
        assert_eq!(g(None, None), (16, "stop"));
        assert_eq!(g(Some(5), None), (5, "length"));
        assert_eq!(g(None, Some(3)), (3, "stop"));
        assert_eq!(g(Some(10), Some(3)), (3, "stop"));
        assert_eq!(g(Some(2), Some(3)), (2, "length"));
        assert_eq!(g(None, Some(10_000)), (4096, "length"));
        assert_eq!(Generation::new(Some(3), None).text(), "tok0 tok1 tok2");
    }

    #[test]
    fn embeddings_are_deterministic_and_bounded() {
        let a = embedding(fnv1a(*b"hello"), 8);
        assert_eq!(a, embedding(fnv1a(*b"hello"), 8));
        assert_ne!(a, embedding(fnv1a(*b"world"), 8));
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}
