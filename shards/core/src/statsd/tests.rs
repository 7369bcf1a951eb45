//! The grammar of the module docs, decision by decision, and property tests that hold
//! [`parse_line`], [`for_each_line`] and [`write_series_id`] to it.

use super::*;
use GaugeOp::{Delta, Set as Abs};
use MetricKind::{Counter, Gauge, Set, Timer};
use StatsdError as E;
use proptest::prelude::*;

fn line<'a>(
    name: &'a str,
    kind: MetricKind,
    value: f64,
    gauge_op: GaugeOp,
    member: &'a str,
    sample_rate: f64,
    tags: &'a str,
) -> StatsdLine<'a> {
    StatsdLine {
        name: name.as_bytes(),
        kind,
        value,
        gauge_op,
        member: member.as_bytes(),
        sample_rate,
        tags: tags.as_bytes(),
    }
}

#[test]
fn valid_lines() {
    #[rustfmt::skip]
    let cases: &[(&str, StatsdLine<'_>)] = &[
        // counters
        ("a:1|c", line("a", Counter, 1.0, Abs, "", 1.0, "")),
        ("a.b_c-d:1.5|c", line("a.b_c-d", Counter, 1.5, Abs, "", 1.0, "")),
        ("a:-3|c", line("a", Counter, -3.0, Abs, "", 1.0, "")),
        ("a:+3|c", line("a", Counter, 3.0, Abs, "", 1.0, "")),
        ("a:1e3|c", line("a", Counter, 1000.0, Abs, "", 1.0, "")),
        ("a:1|c|@0.1", line("a", Counter, 10.0, Abs, "", 0.1, "")),
        ("a:3|c|@0.5", line("a", Counter, 6.0, Abs, "", 0.5, "")),
        ("a:1|c|@1", line("a", Counter, 1.0, Abs, "", 1.0, "")),
        ("a:1|c|@.25", line("a", Counter, 4.0, Abs, "", 0.25, "")),
        // gauges: plain sets, signed deltas
        ("a:5|g", line("a", Gauge, 5.0, Abs, "", 1.0, "")),
        ("a:0|g", line("a", Gauge, 0.0, Abs, "", 1.0, "")),
        ("a:+5|g", line("a", Gauge, 5.0, Delta, "", 1.0, "")),
        ("a:-5|g", line("a", Gauge, -5.0, Delta, "", 1.0, "")),
        ("a:-0|g", line("a", Gauge, 0.0, Delta, "", 1.0, "")),
        ("a:7|g|@0.5", line("a", Gauge, 7.0, Abs, "", 0.5, "")),
        // timers: ms, h, d; the rate does not scale them
        ("a:3.2|ms", line("a", Timer, 3.2, Abs, "", 1.0, "")),
        ("a:3|h", line("a", Timer, 3.0, Abs, "", 1.0, "")),
        ("a:3|d", line("a", Timer, 3.0, Abs, "", 1.0, "")),
        ("a:.5|ms", line("a", Timer, 0.5, Abs, "", 1.0, "")),
        ("a:-2|h", line("a", Timer, -2.0, Abs, "", 1.0, "")),
        ("a:3|ms|@0.5", line("a", Timer, 3.0, Abs, "", 0.5, "")),
        // sets: opaque members
        ("u:alice|s", line("u", Set, 0.0, Abs, "alice", 1.0, "")),
        ("u:1.5|s", line("u", Set, 0.0, Abs, "1.5", 1.0, "")),
        ("u:a:b|s", line("u", Set, 0.0, Abs, "a:b", 1.0, "")),
        ("u:x|s|@0.5", line("u", Set, 0.0, Abs, "x", 0.5, "")),
        // tags, in either order with the rate
        ("a:1|c|#", line("a", Counter, 1.0, Abs, "", 1.0, "")),
        ("a:1|c|#x:1,y", line("a", Counter, 1.0, Abs, "", 1.0, "x:1,y")),
        ("a:1|c|#x:1|@0.5", line("a", Counter, 2.0, Abs, "", 0.5, "x:1")),
        ("a:1|c|@0.5|#x:1", line("a", Counter, 2.0, Abs, "", 0.5, "x:1")),
        ("a:1|c|#bad,,tags", line("a", Counter, 1.0, Abs, "", 1.0, "bad,,tags")),
        // DogStatsD extensions are skipped
        ("a:1|c|c:abc123|#x", line("a", Counter, 1.0, Abs, "", 1.0, "x")),
        ("a:1|c|T1656581400", line("a", Counter, 1.0, Abs, "", 1.0, "")),
        ("a:1|d|#x|c:ci|T1|e:ext|card:low|@0.5", line("a", Timer, 1.0, Abs, "", 0.5, "x")),
        // names are kept as sent
        ("a b:1|c", line("a b", Counter, 1.0, Abs, "", 1.0, "")),
        (" a:1|c", line(" a", Counter, 1.0, Abs, "", 1.0, "")),
        ("ñ.métrique:1|c", line("ñ.métrique", Counter, 1.0, Abs, "", 1.0, "")),
        ("a=b:1|c", line("a=b", Counter, 1.0, Abs, "", 1.0, "")),
    ];
    for (input, want) in cases {
        assert_eq!(parse_line(input.as_bytes()), Ok(*want), "input {input:?}");
    }
    // -0 delta keeps its sign.
    assert!(parse_line(b"a:-0|g").unwrap().value.is_sign_negative());
}

#[test]
fn invalid_lines() {
    #[rustfmt::skip]
    let cases: &[(&[u8], StatsdError)] = &[
        (b"", E::MissingValue),
        (b"a", E::MissingValue),
        (b"a|c", E::MissingValue),
        (b"a|c:1", E::MissingValue),
        (b"a:1", E::MissingType),
        (b"a:1|", E::MissingType),
        (b"a:1||c", E::MissingType),
        (b":1|c", E::EmptyName),
        (b"  :1|c", E::EmptyName),
        (b"\t\r :1|c", E::EmptyName),
        (b"a;b:1|c", E::BadName),
        (b"a;x=1:1|c", E::BadName),
        (b"a:1|x", E::UnknownType),
        (b"a:1|C", E::UnknownType),
        (b"a:1|cc", E::UnknownType),
        (b"a:1|m", E::UnknownType),
        (b"a:1|c\r", E::UnknownType),
        (b"a:1|@0.5", E::UnknownType),
        (b"a:1|#x", E::UnknownType),
        (b"a:|c", E::BadValue),
        (b"a:|g", E::BadValue),
        (b"a:|s", E::BadValue),
        (b"a:x|c", E::BadValue),
        (b"a:1:2|d", E::BadValue),
        (b"a: 1|c", E::BadValue),
        (b"a:1 |c", E::BadValue),
        (b"a:0x10|c", E::BadValue),
        (b"a:1_000|c", E::BadValue),
        (b"a:+-1|g", E::BadValue),
        (b"a:-|g", E::BadValue),
        (b"a:\xff|c", E::BadValue),
        (b"a:nan|c", E::NonFinite),
        (b"a:NaN|ms", E::NonFinite),
        (b"a:inf|g", E::NonFinite),
        (b"a:+inf|g", E::NonFinite),
        (b"a:-infinity|ms", E::NonFinite),
        (b"a:1e400|c", E::NonFinite),
        (b"a:1|c|@1e-320", E::NonFinite),
        (b"a:1|c|@0", E::BadSampleRate),
        (b"a:1|c|@1.5", E::BadSampleRate),
        (b"a:1|c|@-0.5", E::BadSampleRate),
        (b"a:1|c|@", E::BadSampleRate),
        (b"a:1|c|@nan", E::BadSampleRate),
        (b"a:1|c|@inf", E::BadSampleRate),
        (b"a:1|c|@x", E::BadSampleRate),
        (b"a:1|c|@0.5|@0.5", E::BadSampleRate),
        (b"a:1|g|@2", E::BadSampleRate),
        (b"a:1|c|#x|#y", E::BadTags),
        (b"a:1|c|", E::BadSection),
        (b"a:1|c||#x", E::BadSection),
        (b"a:1|c|0.5", E::BadSection),
        (b"a:1|c|%x", E::BadSection),
        (b"a:1|c| #x", E::BadSection),
        (b"_e{5,4}:title|text", E::NotAMetric),
        (b"_e{5,4}:title|text|#a:b", E::NotAMetric),
        (b"_sc|my.check|0|#a:b", E::NotAMetric),
    ];
    for (input, want) in cases {
        assert_eq!(parse_line(input), Err(*want), "input {:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn reasons_are_unique_snake_case() {
    let mut seen = std::collections::HashSet::new();
    for e in StatsdError::ALL {
        let r = e.reason();
        assert!(r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{r}");
        assert!(seen.insert(r), "duplicate reason {r}");
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(StatsdError::BadValue.reason(), "bad_value");
    assert_eq!(StatsdError::LineTooLong.reason(), "line_too_long");
}

#[test]
fn for_each_line_splits_and_strips() {
    let buf = b"a:1|c\r\n\n\nb:2|g\nbad\r\n\r\nc:3|ms|#t:1\n0123456789:1|c\nd:4|s";
    let mut got = Vec::new();
    for_each_line(buf, 12, |r| got.push(r));
    assert_eq!(
        got,
        vec![
            Ok(line("a", Counter, 1.0, Abs, "", 1.0, "")),
            Ok(line("b", Gauge, 2.0, Abs, "", 1.0, "")),
            Err(E::MissingValue),
            Ok(line("c", Timer, 3.0, Abs, "", 1.0, "t:1")),
            Err(E::LineTooLong),
            Ok(line("d", Set, 0.0, Abs, "4", 1.0, "")),
        ]
    );
    let mut n = 0;
    for_each_line(b"", 10, |_| n += 1);
    for_each_line(b"\n\r\n\n", 10, |_| n += 1);
    assert_eq!(n, 0);
    // The limit applies after stripping '\r'; exactly max_line is fine.
    let mut got = Vec::new();
    for_each_line(b"a:1|c\r\nab:1|c\r\n", 5, |r| got.push(r.map(|l| l.name)));
    assert_eq!(got, vec![Ok(&b"a"[..]), Err(E::LineTooLong)]);
}

#[test]
fn split_complete_lines_keeps_partial_tail() {
    assert_eq!(split_complete_lines(b"a:1|c\nb:2|c\nc:3"), (&b"a:1|c\nb:2|c\n"[..], &b"c:3"[..]));
    assert_eq!(split_complete_lines(b"a:1|c\n"), (&b"a:1|c\n"[..], &b""[..]));
    assert_eq!(split_complete_lines(b"partial"), (&b""[..], &b"partial"[..]));
    assert_eq!(split_complete_lines(b""), (&b""[..], &b""[..]));
}

fn series_id(name: &str, tags: &str) -> Result<String, StatsdError> {
    let mut out = Vec::new();
    write_series_id(name.as_bytes(), tags.as_bytes(), &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn series_ids() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str)] = &[
        ("m", "", "m"),
        ("m", "a:1", "m;a=1"),
        ("m", "b:2,a:1", "m;a=1;b=2"),
        ("m", "a:1,b:2", "m;a=1;b=2"),
        ("m", "flag,a:1", "m;a=1;flag"),
        ("m", "a:1,a:1,b,b", "m;a=1;b"),
        ("m", "a:2,a:1", "m;a=1;a=2"),
        ("m", "url:http://x:80/", "m;url=http://x:80/"),
        ("m", "k:", "m;k="),
        ("m", "k:,k", "m;k;k="),
        // sorted by canonical bytes ('=' is 0x3d), not raw (':' is 0x3a)
        ("m", "a<,a:x", "m;a<;a=x"),
        ("m", "ab,a:1", "m;a=1;ab"),
        ("m", "a:1,a!", "m;a!;a=1"),
        ("m", "a,a!", "m;a;a!"),
        ("a.b c", "env:prod,host:h1", "a.b c;env=prod;host=h1"),
    ];
    for (name, tags, want) in cases {
        assert_eq!(series_id(name, tags).as_deref(), Ok(*want), "{name:?} {tags:?}");
    }
}

#[test]
fn series_id_errors_leave_out_unchanged() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, StatsdError)] = &[
        ("", "", E::EmptyName),
        (" ", "a:1", E::EmptyName),
        ("m;x=1", "", E::BadName),
        ("m", ",", E::BadTags),
        ("m", "a,,b", E::BadTags),
        ("m", ",a", E::BadTags),
        ("m", "a,", E::BadTags),
        ("m", "a;b", E::BadTags),
        ("m", "a=b", E::BadTags),
        ("m", "k:v=w", E::BadTags),
        ("m", ":v", E::BadTags),
        ("m", "a:1,:", E::BadTags),
    ];
    for (name, tags, want) in cases {
        let mut out = b"prefix".to_vec();
        let got = write_series_id(name.as_bytes(), tags.as_bytes(), &mut out);
        assert_eq!(got, Err(*want), "{name:?} {tags:?}");
        assert_eq!(out, b"prefix", "{name:?} {tags:?}");
    }
}

#[test]
fn series_id_appends_without_reallocating() {
    let tags: Vec<String> = (0..32).rev().map(|i| format!("k{i:02}:v")).collect();
    let tags = tags.join(",");
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"xx");
    let ptr = out.as_ptr();
    write_series_id(b"m", tags.as_bytes(), &mut out).unwrap();
    assert_eq!(out.as_ptr(), ptr);
    assert!(out.starts_with(b"xxm;k00=v;k01=v;"));
    assert!(out.ends_with(b";k31=v"));
    // More than 32 tags still works (the sort buffer spills to the heap).
    let many: Vec<String> = (0..100).rev().map(|i| format!("k{i:03}")).collect();
    let id = series_id("m", &many.join(",")).unwrap();
    assert!(id.starts_with("m;k000;k001;") && id.ends_with(";k099"));
    // Via the line.
    let l = parse_line(b"m:1|c|#b:2,a:1").unwrap();
    let mut out = Vec::new();
    l.write_series_id(&mut out).unwrap();
    assert_eq!(out, b"m;a=1;b=2");
}

// ---------------------------------------------------------------- proptest

/// Reference model of the series id: build canonical strings, sort, dedup.
fn naive_series_id(name: &[u8], tags: &[Vec<u8>]) -> Vec<u8> {
    let mut canon: Vec<Vec<u8>> = tags
        .iter()
        .map(|t| {
            let mut c = t.clone();
            if let Some(i) = c.iter().position(|&b| b == b':') {
                c[i] = b'=';
            }
            c
        })
        .collect();
    canon.sort();
    canon.dedup();
    let mut out = name.to_vec();
    for c in canon {
        out.push(b';');
        out.extend_from_slice(&c);
    }
    out
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.\\- ]{0,20}[a-zA-Z0-9_.]"
}

/// Valid tags over a small alphabet so that duplicates, shared prefixes
/// and keys around '=' (`<`, `>`) occur often.
fn tag_strategy() -> impl Strategy<Value = String> {
    ("[ab<>!~]{1,3}", proptest::option::of("[ab:<>]{0,3}")).prop_map(|(k, v)| match v {
        Some(v) => format!("{k}:{v}"),
        None => k,
    })
}

#[derive(Debug, Clone)]
struct Generated {
    text: String,
    name: String,
    kind: MetricKind,
    value: f64,
    gauge_op: GaugeOp,
    member: String,
    rate: Option<f64>,
    tags: Option<Vec<String>>,
}

fn valid_line_strategy() -> impl Strategy<Value = Generated> {
    let kind_value = prop_oneof![
        (-1e9f64..1e9).prop_map(|v| (Counter, "c", v, Abs, String::new(), format!("{v}"))),
        (0f64..1e9).prop_map(|v| (Gauge, "g", v, Abs, String::new(), format!("{v}"))),
        (-1e9f64..1e9).prop_map(|v| {
            let text = if v.is_sign_negative() { format!("{v}") } else { format!("+{v}") };
            (Gauge, "g", v, Delta, String::new(), text)
        }),
        (-1e9f64..1e9, prop::sample::select(vec!["ms", "h", "d"])).prop_map(|(v, t)| (
            Timer,
            t,
            v,
            Abs,
            String::new(),
            format!("{v}")
        )),
        "[a-zA-Z0-9.:_-]{1,12}".prop_map(|m| (Set, "s", 0.0, Abs, m.clone(), m)),
    ];
    (
        name_strategy(),
        kind_value,
        proptest::option::of(1e-3f64..=1.0),
        proptest::option::of(proptest::collection::vec(tag_strategy(), 0..8)),
        proptest::collection::vec(prop::sample::select(vec!["c:abc", "T1656581400", "e:x", "card:low"]), 0..2),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(name, (kind, ty, value, gauge_op, member, vtext), rate, tags, ext, at, rate_first)| {
            let mut sections: Vec<String> = ext.into_iter().map(String::from).collect();
            let mut known = Vec::new();
            if let Some(r) = rate {
                known.push(format!("@{r}"));
            }
            if let Some(t) = &tags {
                known.push(format!("#{}", t.join(",")));
            }
            if !rate_first {
                known.reverse();
            }
            for (i, s) in known.into_iter().enumerate() {
                let pos = (at.index(sections.len() + 1) + i).min(sections.len());
                sections.insert(pos, s);
            }
            let mut text = format!("{name}:{vtext}|{ty}");
            for s in sections {
                text.push('|');
                text.push_str(&s);
            }
            Generated { text, name, kind, value, gauge_op, member, rate, tags }
        })
}

/// Lines that are mostly structurally plausible, to reach deep paths.
fn fuzzy_line_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop::sample::select(vec![
            &b"a"[..],
            b":",
            b"|",
            b"@",
            b"#",
            b",",
            b"c",
            b"g",
            b"ms",
            b"s",
            b"d",
            b"h",
            b"1",
            b"0.5",
            b"-",
            b"+",
            b"e9",
            b"nan",
            b"inf",
            b";",
            b"=",
            b" ",
            b"\r",
            b"\xff",
            b"_e{",
            b"_sc|",
            b"T1",
        ]),
        0..16,
    )
    .prop_map(|parts| parts.concat())
}

/// Lines shaped like `name:value|type[sections]`, each part valid or just off.
fn shaped_line_strategy() -> impl Strategy<Value = Vec<u8>> {
    fn pick(options: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
        prop::sample::select(options)
    }
    (
        pick(&["a", "x.y_z", " a", "\t", "_e{", "_x", "a;b", "", "a b", "\u{e9}t\u{e9}"]),
        pick(&[":", "", "::"]),
        pick(&["1", "-2", "+3", "0.5", "", "nan", "1e400", "x", "12345678901234567890", "007"]),
        pick(&["|", "", "||"]),
        pick(&["c", "g", "ms", "h", "d", "s", "", "x", "cc", "C"]),
        pick(&["", "", "", "|@0.5", "|#a:b", "|", "|T1", ";", ":"]),
        pick(&["", "", "\r"]),
    )
        .prop_map(|parts| {
            let (a, b, c, d, e, f, g) = parts;
            [a, b, c, d, e, f, g].concat().into_bytes()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128),
                                max in 0usize..64) {
        let _ = parse_line(&bytes);
        for_each_line(&bytes, max, |_| {});
        let mut out = Vec::new();
        let _ = write_series_id(&bytes, &bytes, &mut out);
        let _ = split_complete_lines(&bytes);
    }

    /// The delimiter-mask fast path of `for_each_line` gives what splitting on `\n` and
    /// `parse_line` give, line by line, at every position in a datagram.
    #[test]
    fn for_each_line_agrees_with_parse_line(
        lines in proptest::collection::vec(prop_oneof![fuzzy_line_strategy(), shaped_line_strategy()], 0..40),
        pad in 0usize..70,
        max in 8usize..100,
    ) {
        let mut buf = vec![b'x'; pad];
        buf.push(b'\n');
        for l in &lines {
            buf.extend_from_slice(l);
            buf.push(b'\n');
        }
        let mut want = Vec::new();
        for line in buf.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                want.push(if line.len() > max { Err(StatsdError::LineTooLong) } else { parse_line(line) });
            }
        }
        let mut got = Vec::new();
        for_each_line(&buf, max, |l| got.push(l));
        prop_assert_eq!(got, want);
        // And without the final newline.
        buf.pop();
        let mut got = Vec::new();
        for_each_line(&buf, max, |l| got.push(l));
        let mut want_unterminated = Vec::new();
        for line in buf.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                want_unterminated.push(if line.len() > max { Err(StatsdError::LineTooLong) } else { parse_line(line) });
            }
        }
        prop_assert_eq!(got, want_unterminated);
    }

    #[test]
    fn fuzzy_lines_never_panic(l in fuzzy_line_strategy(), tags in fuzzy_line_strategy()) {
        if let Ok(parsed) = parse_line(&l) {
            prop_assert!(parsed.value.is_finite());
            prop_assert!(parsed.sample_rate > 0.0 && parsed.sample_rate <= 1.0);
            prop_assert!(!parsed.name.is_empty());
            let mut out = Vec::new();
            let _ = parsed.write_series_id(&mut out);
        }
        let mut out = Vec::new();
        let _ = write_series_id(b"m", &tags, &mut out);
    }

    #[test]
    fn generated_lines_round_trip(g in valid_line_strategy(),
                                  perm_seed in any::<prop::sample::Index>()) {
        let parsed = parse_line(g.text.as_bytes());
        prop_assert!(parsed.is_ok(), "{:?} -> {:?}", g.text, parsed);
        let p = parsed.unwrap();
        prop_assert_eq!(p.name, g.name.as_bytes());
        prop_assert_eq!(p.kind, g.kind);
        prop_assert_eq!(p.gauge_op, g.gauge_op);
        prop_assert_eq!(p.member, g.member.as_bytes());
        let rate = g.rate.unwrap_or(1.0);
        prop_assert_eq!(p.sample_rate, rate);
        let want = if g.kind == Counter && rate != 1.0 { g.value / rate } else { g.value };
        prop_assert_eq!(p.value.to_bits(), want.to_bits(), "{} vs {}", p.value, want);
        let tags = g.tags.unwrap_or_default();
        let joined = tags.join(",");
        prop_assert_eq!(p.tags, joined.as_bytes());

        // Series id: matches the naive model and is permutation-invariant.
        let mut id = Vec::new();
        p.write_series_id(&mut id).unwrap();
        let raw: Vec<Vec<u8>> = tags.iter().map(|t| t.as_bytes().to_vec()).collect();
        prop_assert_eq!(&id, &naive_series_id(g.name.as_bytes(), &raw));
        let mut shuffled = tags.clone();
        if !shuffled.is_empty() {
            // A rotation plus a swap, driven by the seed.
            let n = shuffled.len();
            shuffled.rotate_left(perm_seed.index(n));
            shuffled.swap(0, perm_seed.index(n));
        }
        let mut id2 = Vec::new();
        write_series_id(g.name.as_bytes(), shuffled.join(",").as_bytes(), &mut id2).unwrap();
        prop_assert_eq!(id, id2);
    }

    #[test]
    fn series_id_permutation_invariant(
        (tags, shuffled) in proptest::collection::vec(tag_strategy(), 0..40)
            .prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle())),
    ) {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_series_id(b"m", tags.join(",").as_bytes(), &mut a).unwrap();
        write_series_id(b"m", shuffled.join(",").as_bytes(), &mut b).unwrap();
        prop_assert_eq!(&a, &b);
        let raw: Vec<Vec<u8>> = tags.iter().map(|t| t.as_bytes().to_vec()).collect();
        prop_assert_eq!(a, naive_series_id(b"m", &raw));
    }

    #[test]
    fn for_each_line_one_result_per_line(
        lines in proptest::collection::vec(
            prop_oneof![
                3 => valid_line_strategy().prop_map(|g| g.text.into_bytes()),
                2 => proptest::collection::vec(any::<u8>(), 0..40)
                    .prop_map(|b| b.into_iter().filter(|&c| c != b'\n' && c != b'\r').collect()),
                1 => fuzzy_line_strategy()
                    .prop_map(|b| b.into_iter().filter(|&c| c != b'\n' && c != b'\r').collect()),
                1 => Just(Vec::new()),
            ],
            0..12,
        ),
        crlf in proptest::collection::vec(any::<bool>(), 12),
        trailing in any::<bool>(),
        max in prop_oneof![Just(usize::MAX), 10usize..80],
    ) {
        let mut buf = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                buf.extend_from_slice(if crlf[i] { b"\r\n" } else { b"\n" });
            }
            buf.extend_from_slice(l);
        }
        if trailing {
            buf.push(b'\n');
        }
        let want: Vec<_> = lines
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| if l.len() > max { Err(E::LineTooLong) } else { parse_line(l) })
            .collect();
        let mut got = Vec::new();
        for_each_line(&buf, max, |r| got.push(r));
        prop_assert_eq!(got, want);
    }
}
