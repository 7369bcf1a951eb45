//! Zero-copy StatsD / DogStatsD line parsing and canonical series ids.
//!
//! **Runs on:** any shard core (and whichever core terminates the UDP/TCP
//! socket). Everything here is a pure function over borrowed bytes: no state,
//! no I/O, no clock.
//!
//! **Hot path:** called for every received line. No allocation per line (the
//! parsed [`StatsdLine`] borrows from the input buffer; [`write_series_id`]
//! only writes into the caller's reused `Vec`), no logging (errors are
//! returned as [`StatsdError`], whose [`StatsdError::reason`] is meant to be a
//! label on a drop counter), and malformed input never panics.
//!
//! # Line grammar
//!
//! ```text
//! line     = name ":" value "|" type *( "|" section )
//! type     = "c" | "g" | "ms" | "h" | "d" | "s"
//! section  = "@" rate            ; sample rate, 0 < rate <= 1
//!          | "#" tags            ; DogStatsD tags: tag *( "," tag ), may be empty
//!          | ALPHA *( any but "|" ) ; other DogStatsD extension: skipped
//! ```
//!
//! Decisions (each one is tested in `tests.rs`):
//!
//! * **Splitting.** The line is cut at the first `|`; the part before it is cut
//!   at its first `:` into name and value. A name therefore never contains `:`
//!   or `|`. A value containing `:` (DogStatsD ≥1.1 multi-value packing,
//!   `name:1:2:3|d`) is [`StatsdError::BadValue`] for numeric kinds; for sets
//!   it is simply a member containing `:`.
//! * **Names.** Empty or ASCII-whitespace-only names are
//!   [`StatsdError::EmptyName`]. Names containing `;` are
//!   [`StatsdError::BadName`]: `;` separates the name from the tags in the
//!   series id, so allowing it would let `foo;a=1` collide with `foo|#a:1`.
//!   Nothing is trimmed or sanitised; all other bytes (spaces, UTF-8, …) are
//!   kept as sent.
//! * **Types.** `c` counter, `g` gauge, `ms`/`h`/`d` timer (`h` is StatsD's
//!   histogram, `d` DogStatsD's distribution; both are sampled values like
//!   `ms`), `s` set. Case-sensitive. The type must be the first section.
//! * **Values.** Parsed with `f64::from_str` on the borrowed slice (no
//!   allocation): no surrounding whitespace, no hex, no `_`. NaN/±inf
//!   (including overflow such as `1e400`) are [`StatsdError::NonFinite`].
//!   Gauges: a leading `+` or `-` makes the value a signed delta
//!   ([`GaugeOp::Delta`]), as in Etsy StatsD; so a gauge cannot be *set* to a
//!   negative value in one line. Sets: the value is an opaque non-empty member.
//! * **Sample rate.** Must parse and lie in `(0, 1]` (else
//!   [`StatsdError::BadSampleRate`]; so does a second `@` section). Counters are
//!   divided by it (`1|c|@0.1` → 10.0; a non-finite result is
//!   [`StatsdError::NonFinite`]). For other kinds it is only reported.
//! * **Sections after the type** may come in any order. `@` and `#` may each
//!   appear at most once (a second `#` is [`StatsdError::BadTags`]).
//!   Sections starting with an ASCII letter are DogStatsD extensions (`c:`
//!   container id, `T` timestamp, `e:` external data, `card:` cardinality, …)
//!   and are **skipped**, so newer clients keep working; the timestamp in
//!   particular is ignored (samples are aggregated at arrival time). Any other
//!   section (empty — e.g. a trailing `|` —, a digit, punctuation) is
//!   [`StatsdError::BadSection`].
//! * **Tags** are returned raw by [`parse_line`] (cheap: not even split) and
//!   validated by [`write_series_id`].
//! * DogStatsD **events and service checks** (`_e{…`, `_sc|…`) are
//!   [`StatsdError::NotAMetric`].
//!
//! # Canonical series id
//!
//! [`write_series_id`] writes the Graphite tagged-series form
//! `name;k1=v1;k2=v2;flag`: each DogStatsD tag `k:v` becomes `k=v` (only the
//! first `:` is the separator, so `url:http://x` becomes `url=http://x`), a
//! tag without `:` is a valueless flag written as is, the tags are sorted by
//! these canonical bytes and exact duplicates removed. A tag set with
//! duplicate keys but different values (`a:1,a:2`) keeps both, as Datadog
//! does. To keep the mapping injective, a tag that is empty (`a,,b`, a
//! leading or trailing `,`), has an empty key (`:v`), or contains `;` or `=`
//! is [`StatsdError::BadTags`].
//!
//! # Files
//!
//! - `line.rs`: [`StatsdLine`] and its [`MetricKind`] and [`GaugeOp`], [`parse_line`],
//!   [`for_each_line`] and [`split_complete_lines`].
//! - `scan.rs`: the delimiter bit mask from which [`for_each_line`] reads plain lines.
//! - `number.rs`: values and sample rates.
//! - `tags.rs`: names, tags and [`write_series_id`].
//! - `error.rs`: [`StatsdError`].
//! - `bytes.rs`: the byte search the others share.
//! - `tests.rs`: the grammar above, decision by decision.
//!
//! `line.rs` uses the others; `tags.rs` uses `bytes.rs` and `error.rs`; the rest use at most
//! `error.rs`.

mod bytes;
mod error;
mod line;
mod number;
mod scan;
mod tags;
#[cfg(test)]
mod tests;

pub use error::StatsdError;
pub use line::{GaugeOp, MetricKind, StatsdLine, for_each_line, parse_line, split_complete_lines};
pub use tags::write_series_id;
