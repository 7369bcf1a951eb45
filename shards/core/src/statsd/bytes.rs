//! Byte search over a borrowed line, shared by the line and tag parsers.
//!
//! Pure functions over borrowed bytes; they run on whichever core parses the line.

/// The index of the first `needle` in `haystack`.
#[inline]
pub(super) fn find(haystack: &[u8], needle: u8) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Splits at the first `sep`: `(before, Some(after))`, or `(all, None)`.
#[inline]
pub(super) fn split_once(bytes: &[u8], sep: u8) -> (&[u8], Option<&[u8]>) {
    match find(bytes, sep) {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    }
}
