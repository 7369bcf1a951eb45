//! DogStatsD tags and the canonical series id: [`write_series_id`] validates a line's raw tag
//! section, orders the tags canonically and writes `name;k1=v1;k2=v2;flag` (see the
//! `statsd` module docs for the rules).
//!
//! Pure functions over borrowed bytes; they run on whichever core parses the line, and
//! write only into the caller's buffer.

use std::cmp::Ordering;

use smallvec::SmallVec;

use super::bytes::{find, split_once};
use super::error::StatsdError;

/// Checks a metric name as both a line and a series id take it: not empty or ASCII
/// whitespace only ([`StatsdError::EmptyName`]), no `;` ([`StatsdError::BadName`]).
#[inline]
pub(super) fn check_name(name: &[u8]) -> Result<(), StatsdError> {
    if name.iter().all(u8::is_ascii_whitespace) {
        // Also true for the empty name.
        return Err(StatsdError::EmptyName);
    }
    if find(name, b';').is_some() {
        return Err(StatsdError::BadName);
    }
    Ok(())
}

/// How many tags are sorted without touching the heap.
const INLINE_TAGS: usize = 32;

/// One validated DogStatsD tag: `key` or `key:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag<'a> {
    /// Non-empty; no `:` `;` `=` `,`.
    key: &'a [u8],
    /// After the first `:`; may be empty or contain `:`; no `;` `=` `,`.
    value: Option<&'a [u8]>,
}

impl Tag<'_> {
    /// Length of the canonical form `key` / `key=value`.
    #[inline]
    fn canonical_len(&self) -> usize {
        self.key.len() + self.value.map_or(0, |v| 1 + v.len())
    }
}

#[inline]
fn parse_tag(raw: &[u8]) -> Result<Tag<'_>, StatsdError> {
    if raw.iter().any(|&b| b == b';' || b == b'=') {
        return Err(StatsdError::BadTags);
    }
    let (key, value) = split_once(raw, b':');
    if key.is_empty() {
        // Covers the empty tag (`a,,b`) and the empty key (`:v`).
        return Err(StatsdError::BadTags);
    }
    Ok(Tag { key, value })
}

/// Compares the canonical forms (`key` or `key=value`) byte-wise without
/// building them. Relies on keys containing neither `:` nor `=`.
fn cmp_canonical(a: &Tag<'_>, b: &Tag<'_>) -> Ordering {
    let m = a.key.len().min(b.key.len());
    match a.key[..m].cmp(&b.key[..m]) {
        Ordering::Equal => {}
        other => return other,
    }
    match a.key.len().cmp(&b.key.len()) {
        // Same key: "k" < "k=..."; "k=x" vs "k=y" compares x with y.
        Ordering::Equal => a.value.cmp(&b.value),
        // a's key is a strict prefix of b's: a ends (Less) or continues with
        // '=', which never equals b.key[m].
        Ordering::Less => match a.value {
            None => Ordering::Less,
            Some(_) => b'='.cmp(&b.key[m]),
        },
        Ordering::Greater => match b.value {
            None => Ordering::Greater,
            Some(_) => a.key[m].cmp(&b'='),
        },
    }
}

/// Appends the canonical series id of `name` + DogStatsD `tags` to `out`
/// (which is not cleared): `name;k1=v1;k2=v2;flag`, tags sorted by these
/// canonical bytes with duplicates removed; just `name` without tags. The
/// same name with the same tags in any order (or repeated) gives the same id,
/// and distinct (name, tag set) pairs give distinct ids.
///
/// Errors, leaving `out` unchanged: [`StatsdError::EmptyName`] /
/// [`StatsdError::BadName`] as in `parse_line`; [`StatsdError::BadTags`] for
/// an empty tag (`a,,b`, leading/trailing `,`), an empty key (`:v`), or a tag
/// containing `;` or `=`. An empty `tags` means no tags.
///
/// Allocates only if `out` lacks capacity (at most one reservation) or there
/// are more than 32 tags.
pub fn write_series_id(name: &[u8], tags: &[u8], out: &mut Vec<u8>) -> Result<(), StatsdError> {
    check_name(name)?;
    if tags.is_empty() {
        out.extend_from_slice(name);
        return Ok(());
    }
    let mut list: SmallVec<[Tag<'_>; INLINE_TAGS]> = SmallVec::new();
    if !tags.is_empty() {
        for raw in tags.split(|&b| b == b',') {
            list.push(parse_tag(raw)?);
        }
    }
    // Unstable sort: in place, no allocation. Equal canonical forms are equal
    // tags, so the order among them does not matter.
    list.sort_unstable_by(cmp_canonical);
    list.dedup();

    let len = name.len() + list.iter().map(|t| 1 + t.canonical_len()).sum::<usize>();
    out.reserve(len);
    out.extend_from_slice(name);
    for tag in &list {
        out.push(b';');
        out.extend_from_slice(tag.key);
        if let Some(value) = tag.value {
            out.push(b'=');
            out.extend_from_slice(value);
        }
    }
    Ok(())
}
