//! M3's tag filters: space-separated `tag:pattern` pairs, all of which must match; `__name__`
//! names the metric name. A series that lacks a filtered tag does not match, whatever the
//! pattern (negated ones too), as in M3's `tagsFilter`.
//!
//! Also the reading of sheaf's canonical StatsD series id (`name;k=v;flag`) into a name and
//! tags. Compiled on the control thread; matched on the shard core that creates a series.

use super::RuleError;
use super::glob::Glob;

/// The tag name that stands for the metric name.
pub const NAME_TAG: &str = "__name__";

/// A series id read as a metric name and tags (a flag tag has an empty value).
#[derive(Debug, Clone, Copy)]
pub struct IdView<'a> {
    pub name: &'a [u8],
    tags: &'a [u8],
}

impl<'a> IdView<'a> {
    /// Reads a canonical id: the name up to the first `;`, then `;`-separated `k=v` or `k`.
    pub fn parse(id: &'a [u8]) -> Self {
        match id.iter().position(|&b| b == b';') {
            Some(i) => Self { name: &id[..i], tags: &id[i + 1..] },
            None => Self { name: id, tags: &[] },
        }
    }

    /// Every (key, value) tag, in the id's (canonical) order.
    pub fn tags(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let tags = self.tags;
        tags.split(|&b| b == b';').filter(|t| !t.is_empty()).map(|t| match t.iter().position(|&b| b == b'=') {
            Some(i) => (&t[..i], &t[i + 1..]),
            None => (t, &t[t.len()..]),
        })
    }

    /// The value of tag `key` (`__name__`: the metric name).
    pub fn tag(&self, key: &[u8]) -> Option<&'a [u8]> {
        if key == NAME_TAG.as_bytes() {
            return Some(self.name);
        }
        self.tags().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// One compiled filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    source: String,
    terms: Vec<(Vec<u8>, Glob)>,
}

impl Filter {
    /// Compiles `text`; empty text, a term without `:` or with an empty tag name, and a bad
    /// pattern are refused.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let mut terms = Vec::new();
        for term in text.split_ascii_whitespace() {
            let (tag, pattern) = term
                .split_once(':')
                .filter(|(tag, _)| !tag.is_empty())
                .ok_or_else(|| RuleError::new("filter", format!("{term:?} is not tag:pattern")))?;
            terms.push((tag.as_bytes().to_vec(), Glob::parse(pattern)?));
        }
        if terms.is_empty() {
            return Err(RuleError::new("filter", "is empty"));
        }
        Ok(Self { source: text.to_owned(), terms })
    }

    /// The text it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, id: &IdView<'_>) -> bool {
        self.terms.iter().all(|(tag, glob)| id.tag(tag).is_some_and(|v| glob.matches(v)))
    }
}
