//! Security decision: which positions of the input are checked for a secret. A position is
//! skipped only when no form can start there, so this filter may waste work but never lose a
//! match.
//!
//! Each form's first `width` bytes (4, or the shortest form's length when shorter) set one bit,
//! chosen by a multiplicative hash, in a 2^18-bit table (32 KiB, inside a core's L1 cache). A
//! position whose next `width` bytes hash to a clear bit starts no form. On log text a few
//! positions in a thousand pass, and only those run the automaton, anchored. With 50 secrets
//! (benches/redact.rs, on a shared, loaded machine) an overlapping search of the whole input ran
//! at 39 MB/s with a contiguous NFA and 160 MB/s with a DFA of 11.5 MiB; this filter in front of
//! the 0.4 MiB NFA ran at 500 to 770 MB/s.
//!
//! Its worst case is input that keeps repeating the first bytes of a form: each such position
//! costs an anchored search of at most the longest form's length. Only the server whose stderr
//! it is pays for that, inside its own CPU limit.
//!
//! The table is derived from the values, so it is zeroized on drop.

use zeroize::Zeroizing;

const TABLE_BITS: u32 = 18;

/// The bit table of the forms' first bytes.
pub(crate) struct StartFilter {
    bits: Zeroizing<Vec<u64>>,
    /// How many leading bytes of a form are hashed: 1 to 4.
    width: usize,
}

impl StartFilter {
    /// A filter for `forms`, none of them empty.
    pub(crate) fn new<'a>(forms: impl Iterator<Item = &'a [u8]> + Clone) -> StartFilter {
        let width = forms
            .clone()
            .map(<[u8]>::len)
            .min()
            .unwrap_or(1)
            .clamp(1, 4);
        let mut bits = Zeroizing::new(vec![0u64; 1 << (TABLE_BITS - 6)]);
        for form in forms {
            let slot = hash(gram(&form[..width]));
            if let Some(word) = bits.get_mut(slot >> 6) {
                *word |= 1 << (slot & 63);
            }
        }
        StartFilter { bits, width }
    }

    /// Calls `found` with every position in `0..end` that may start a form, in order; `end`
    /// must leave `width` bytes of `buf` after the last position (shorter tails start nothing).
    pub(crate) fn candidates(&self, buf: &[u8], end: usize, mut found: impl FnMut(usize)) {
        let end = end.min((buf.len() + 1).saturating_sub(self.width));
        if end == 0 {
            return;
        }
        let windows = buf[..end + self.width - 1].windows(self.width);
        if self.width == 4 {
            // The common case, kept free of the general loop's branches.
            for (position, window) in windows.enumerate() {
                let gram = u32::from_le_bytes([window[0], window[1], window[2], window[3]]);
                if self.is_set(hash(gram)) {
                    found(position);
                }
            }
        } else {
            for (position, window) in windows.enumerate() {
                if self.is_set(hash(gram(window))) {
                    found(position);
                }
            }
        }
    }

    fn is_set(&self, slot: usize) -> bool {
        self.bits
            .get(slot >> 6)
            .is_some_and(|word| word & (1 << (slot & 63)) != 0)
    }
}

/// Up to 4 bytes as a little-endian number.
fn gram(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .enumerate()
        .fold(0, |gram, (index, &byte)| {
            gram | u32::from(byte) << (8 * index)
        })
}

fn hash(gram: u32) -> usize {
    // Fibonacci hashing: the top bits of the product mix all four bytes.
    let slot = gram.wrapping_mul(0x9e37_79b1) >> (32 - TABLE_BITS);
    usize::try_from(slot).unwrap_or(0)
}

#[cfg(test)]
mod tests;
