use proptest::prelude::*;

use super::*;

fn policy(s: &str) -> StoragePolicy {
    s.parse().unwrap()
}

fn glob(p: &str) -> Glob {
    Glob::parse(p).unwrap()
}

#[test]
fn glob_syntax() {
    assert!(glob("abc").matches(b"abc") && !glob("abc").matches(b"abcd"));
    assert!(glob("a*").matches(b"a") && glob("a*").matches(b"abc") && !glob("a*").matches(b"ba"));
    assert!(glob("*c").matches(b"abc") && !glob("*c").matches(b"abd"));
    assert!(glob("a?c").matches(b"abc") && !glob("a?c").matches(b"ac"));
    assert!(glob("[ab]x").matches(b"bx") && !glob("[ab]x").matches(b"cx"));
    assert!(glob("[a-c]").matches(b"b") && !glob("[a-c]").matches(b"d"));
    assert!(glob("[!a-c]").matches(b"d") && !glob("[!a-c]").matches(b"a"));
    assert!(glob("{foo,bar}.*").matches(b"bar.x") && !glob("{foo,bar}.*").matches(b"baz.x"));
    assert!(glob("!foo*").matches(b"bar") && !glob("!foo*").matches(b"foo1"));
    assert!(glob("*a*b*c*").matches(b"xxaxxbxxcxx") && !glob("*a*b*c*").matches(b"xxcxxbxxaxx"));
    assert!(glob("").matches(b"") && !glob("").matches(b"a"));
}

#[test]
fn bad_globs_are_refused() {
    for bad in ["[ab", "{a,b", "[]", "{}", "[z-a]", "a]", "{a*,b}"] {
        assert!(Glob::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn filters_read_names_and_tags() {
    let f = Filter::parse("__name__:http.* route:/api/*").unwrap();
    assert!(f.matches(&IdView::parse(b"http.requests;host=a;route=/api/x")));
    assert!(!f.matches(&IdView::parse(b"http.requests;host=a;route=/web")));
    assert!(!f.matches(&IdView::parse(b"http.requests;host=a")), "a missing tag does not match");
    let negated = Filter::parse("env:!prod").unwrap();
    assert!(negated.matches(&IdView::parse(b"m;env=dev")));
    assert!(!negated.matches(&IdView::parse(b"m")), "nor does a missing tag under negation (as in M3)");
    let flag = Filter::parse("canary:*").unwrap();
    assert!(flag.matches(&IdView::parse(b"m;canary;env=x")), "a flag tag has an empty value");
    for bad in ["", "   ", "name", ":x", "a:[b"] {
        assert!(Filter::parse(bad).is_err(), "{bad:?}");
    }
}

fn rules() -> RuleSet {
    RuleSet {
        mapping_rules: vec![
            MappingRule {
                name: "keep-api".into(),
                filter: Filter::parse("__name__:http.*").unwrap(),
                aggregations: AggTypes::of(&[AggType::Max]),
                storage_policies: vec![policy("1m:40d"), policy("10s:2d")],
                drop: false,
            },
            MappingRule {
                name: "drop-debug".into(),
                filter: Filter::parse("__name__:debug.*").unwrap(),
                aggregations: AggTypes::DEFAULT,
                storage_policies: vec![],
                drop: true,
            },
        ],
        rollup_rules: vec![RollupRule {
            name: "by-route".into(),
            filter: Filter::parse("__name__:{http,debug}.requests").unwrap(),
            transforms_before: vec![TransformType::Increase],
            metric_name: b"requests_by_route".to_vec(),
            group_by: vec![b"route".to_vec(), b"a".to_vec()],
            aggregations: AggTypes::of(&[AggType::Sum]),
            transforms_after: vec![TransformType::Add],
            storage_policies: vec![policy("1m:40d")],
        }],
    }
}

#[test]
fn match_gives_mappings_drop_and_rollups() {
    let r = rules();
    let m = r.match_id(b"http.requests;a=1;host=h;route=/x");
    assert!(!m.drop);
    assert_eq!(m.mappings.len(), 1);
    assert_eq!(m.elem_specs().unwrap().len(), 2);
    assert_eq!(m.rollups.len(), 1);
    assert_eq!(m.rollups[0].new_id, b"requests_by_route;a=1;route=/x");
    let dropped = r.match_id(b"debug.requests;a=1;route=/y");
    assert!(dropped.drop && dropped.mappings.is_empty() && dropped.elem_specs().is_none());
    assert_eq!(dropped.rollups.len(), 1, "a dropped series still rolls up");
    let lacking = r.match_id(b"http.requests;route=/x");
    assert!(lacking.rollups.is_empty(), "a series lacking a groupBy tag is not rolled up");
    assert_eq!(r.match_id(b"other"), MatchResult::default());
}

#[test]
fn rollup_ids_sort_as_statsd_ids_do() {
    let rule = RollupRule { group_by: vec![b"ab".to_vec(), b"a".to_vec()], ..rules().rollup_rules[0].clone() };
    let r = RuleSet { rollup_rules: vec![rule], ..RuleSet::default() };
    let m = r.match_id(b"http.requests;a=9;ab=1");
    let mut expected = Vec::new();
    crate::statsd::write_series_id(b"requests_by_route", b"ab:1,a:9", &mut expected).unwrap();
    assert_eq!(m.rollups[0].new_id, expected);
}

#[test]
fn aggregation_names_are_m3s() {
    let parsed = parse_aggregations(&["Sum", "P9999", "SumSq"]).unwrap();
    assert_eq!(parsed, AggTypes::of(&[AggType::Sum, AggType::P9999, AggType::SumSq]));
    assert!(parse_aggregations(&["sum"]).is_err());
    assert_eq!(TransformType::from_m3_name("PerSecond"), Some(TransformType::PerSecond));
}

#[test]
fn schedule_switches_at_the_cutover() {
    let old = std::sync::Arc::new(RuleSet::default());
    let new = std::sync::Arc::new(rules());
    let mut s = RuleSchedule { current: old, next: None };
    s.replace(new, 100, 50);
    assert!(s.at(99).is_empty());
    assert!(!s.at(100).is_empty());
    s.settle(100);
    assert!(!s.at(0).is_empty(), "settled: the new set for every series created from now on");
}

/// A reference matcher for `*`, `?` and literals: plain backtracking.
fn reference(pattern: &[u8], value: &[u8]) -> bool {
    match (pattern.first(), value.first()) {
        (None, _) => value.is_empty(),
        (Some(b'*'), _) => (0..=value.len()).any(|i| reference(&pattern[1..], &value[i..])),
        (Some(b'?'), Some(_)) => reference(&pattern[1..], &value[1..]),
        (Some(p), Some(v)) if p == v => reference(&pattern[1..], &value[1..]),
        _ => false,
    }
}

proptest! {
    /// `*`, `?` and literals agree with plain backtracking, negated or not.
    #[test]
    fn glob_agrees_with_backtracking(pattern in "[ab*?]{0,8}", value in "[abc]{0,10}") {
        prop_assert_eq!(glob(&pattern).matches(value.as_bytes()), reference(pattern.as_bytes(), value.as_bytes()));
        let negated = glob(&format!("!{pattern}"));
        prop_assert_eq!(negated.matches(value.as_bytes()), !reference(pattern.as_bytes(), value.as_bytes()));
    }

    /// Parsing any text as a pattern or filter never panics.
    #[test]
    fn parsing_never_panics(text in ".{0,24}") {
        let _ = Glob::parse(&text).map(|g| g.matches(text.as_bytes()));
        let _ = Filter::parse(&text);
    }
}
