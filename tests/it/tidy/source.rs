//! What one Rust source file says about modules: the child modules it declares, the inline
//! modules it holds, and the paths its non-test code names (in `use` and in code).
//!
//! It works on tokens: identifiers, `::` and single punctuation. Comments, strings, chars
//! and numbers are dropped, so that `crate::x` in a doc comment or a string names nothing.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok<'a> {
    /// An identifier or keyword (`crate`, `$crate`, `r#type` as `type`).
    Ident(&'a str),
    /// `::`.
    PathSep,
    Punct(u8),
}

/// A token and the line (from 1) it starts on.
#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    line: usize,
}

/// Bytes an identifier is made of (any non-ASCII byte too: this codebase has non-ASCII text
/// only in comments and strings).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let c = text.as_bytes();
    let line_starts: Vec<usize> = (0..c.len()).filter(|&i| c[i] == b'\n').map(|i| i + 1).collect();
    let line_of = |i: usize| 1 + line_starts.partition_point(|&start| start <= i);
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let start = i;
        let mut tok = None;
        match (c[i], c.get(i + 1).copied().unwrap_or(0)) {
            (b, _) if b.is_ascii_whitespace() => i += 1,
            (b'/', b'/') => i += c[i..].iter().position(|&b| b == b'\n').unwrap_or(c.len() - i),
            (b'/', b'*') => i = skip_block_comment(c, i),
            (b'"', _) => i = skip_string(c, i),
            (b'\'', _) => i = skip_char_or_lifetime_quote(c, i),
            (b'0'..=b'9', _) => i += c[i..].iter().position(|&b| !is_word_byte(b)).unwrap_or(c.len() - i),
            (b'$', _) if c[i + 1..].starts_with(b"crate") => {
                tok = Some(Tok::Ident("$crate"));
                i += 6;
            }
            (b':', b':') => {
                tok = Some(Tok::PathSep);
                i += 2;
            }
            (b, _) if is_word_byte(b) => {
                let (end, word) = lex_word(text, i);
                tok = word.map(Tok::Ident);
                i = end;
            }
            (b, _) => {
                tok = Some(Tok::Punct(b));
                i += 1;
            }
        }
        if let Some(tok) = tok {
            tokens.push(Token { tok, line: line_of(start) });
        }
    }
    tokens
}

/// Past a (nested) `/* .. */` comment that starts at `i`.
fn skip_block_comment(c: &[u8], mut i: usize) -> usize {
    let mut depth = 0;
    while i < c.len() {
        if c[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if c[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    i
}

/// Past a `".."` string (with `\` escapes) whose opening quote is at `i`.
fn skip_string(c: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < c.len() && c[i] != b'"' {
        i += if c[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// Past a raw string `r#".."#` whose first `#` (or `"`) is at `i`; `None` when it is not one.
fn skip_raw_string(c: &[u8], mut i: usize) -> Option<usize> {
    let hashes = c[i..].iter().take_while(|&&b| b == b'#').count();
    i += hashes;
    if c.get(i) != Some(&b'"') {
        return None;
    }
    let closing = [b"\"".as_slice(), &vec![b'#'; hashes]].concat();
    let end = c[i + 1..].windows(closing.len()).position(|w| w == closing.as_slice());
    Some(end.map_or(c.len(), |e| i + 1 + e + closing.len()))
}

/// Past a char literal (`'a'`, `'é'`, `'\n'`, `'\u{1F600}'`) at `i`, or past the quote of a
/// lifetime or label (`'a`, `'static`), whose name is then read as a word.
fn skip_char_or_lifetime_quote(c: &[u8], i: usize) -> usize {
    if c.get(i + 1) == Some(&b'\\') {
        let closing = c.get(i + 3..).and_then(|rest| rest.iter().position(|&b| b == b'\''));
        return closing.map_or(c.len(), |p| i + 4 + p);
    }
    // The length of the UTF-8 character after the quote, from its first byte.
    let len = match c.get(i + 1) {
        Some(&b) if b >= 0xF0 => 4,
        Some(&b) if b >= 0xE0 => 3,
        Some(&b) if b >= 0xC0 => 2,
        _ => 1,
    };
    if c.get(i + 1 + len) == Some(&b'\'') { i + 2 + len } else { i + 1 }
}

/// An identifier at `i`, or the literal it prefixes (`b".."`, `b'x'`, `r#".."#`, `c".."`,
/// dropped as `None`); a raw identifier `r#name` is `name`. Returns where it ends.
fn lex_word(text: &str, i: usize) -> (usize, Option<&str>) {
    let c = text.as_bytes();
    let end = i + c[i..].iter().position(|&b| !is_word_byte(b)).unwrap_or(c.len() - i);
    let word = &text[i..end];
    match (word, c.get(end).copied().unwrap_or(0)) {
        ("b" | "c", b'"') => (skip_string(c, end), None),
        ("b", b'\'') => (skip_char_or_lifetime_quote(c, end), None),
        ("r" | "br" | "cr", b'"' | b'#') => match skip_raw_string(c, end) {
            Some(after) => (after, None),
            None => lex_word(text, end + 1), // `r#name`
        },
        _ => (end, Some(word)),
    }
}

/// Where a path is written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum PathKind {
    /// In a `use`; `reexport` when the `use` is `pub` or `pub(..)`.
    Use { reexport: bool },
    /// In code (a type, a call, a pattern, a macro's arguments).
    Code,
}

/// A path named in a file: `segments` as written (`["super", "router", "Source"]`),
/// in the inline module `scope` of the file (`[]` at its top).
#[derive(Clone, Debug)]
pub(super) struct PathRef {
    pub(super) scope: Vec<String>,
    pub(super) segments: Vec<String>,
    pub(super) kind: PathKind,
    /// The name a `use` binds (`Foo` for `use a::Foo` and `use b::X as Foo`); `None` for a
    /// glob, `as _` or a path in code.
    pub(super) binds: Option<String>,
    pub(super) line: usize,
}

#[derive(Debug, Default)]
pub(super) struct ParsedFile {
    /// `mod name;` of non-test modules, with the inline scope that declares them.
    pub(super) children: Vec<(Vec<String>, String)>,
    /// Non-test inline `mod name { .. }` blocks, as their scope within the file.
    pub(super) inline_modules: Vec<Vec<String>>,
    /// Test modules (`mod tests`, `#[cfg(test)] mod x`), inline or not, with their scope:
    /// a path into one is into test code, and makes no edge.
    pub(super) test_modules: Vec<(Vec<String>, String)>,
    pub(super) paths: Vec<PathRef>,
}

fn is_ident(t: Option<&Token<'_>>, word: &str) -> bool {
    matches!(t, Some(Token { tok: Tok::Ident(w), .. }) if *w == word)
}

fn is_punct(t: Option<&Token<'_>>, ch: char) -> bool {
    matches!(t, Some(Token { tok: Tok::Punct(p), .. }) if char::from(*p) == ch)
}

fn ident<'a>(t: Option<&Token<'a>>) -> Option<&'a str> {
    match t {
        Some(Token { tok: Tok::Ident(w), .. }) => Some(w),
        _ => None,
    }
}

/// What `text` (a module file) declares and names, its test code left out (see
/// `tidy::no_import_cycle_between_module_files` for what is test code).
pub(super) fn parse_file(text: &str) -> ParsedFile {
    let t = tokenize(text);
    let mut parsed = ParsedFile::default();
    // Inline modules we are in: their name and the brace depth inside them.
    let mut scopes: Vec<(String, usize)> = Vec::new();
    let scope = |scopes: &[(String, usize)]| scopes.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let mut depth = 0;
    let mut i = 0;
    while i < t.len() {
        if is_punct(t.get(i), '#') {
            let (end, inner, test) = attribute(&t, i);
            if test && inner {
                return ParsedFile::default(); // `#![cfg(test)]`: the whole file is test code
            }
            if !test {
                i = end;
                continue;
            }
            let item = skip_attributes(&t, end);
            if let Some(name) = module_declared_at(&t, item) {
                parsed.test_modules.push((scope(&scopes), name.to_string()));
            }
            i = skip_item(&t, item);
        } else if is_ident(t.get(i), "mod") && ident(t.get(i + 1)).is_some() {
            let name = ident(t.get(i + 1)).unwrap().to_string();
            let mut inside = scope(&scopes);
            if name == "tests" {
                parsed.test_modules.push((inside, name));
                i = skip_item(&t, i);
            } else if is_punct(t.get(i + 2), ';') {
                parsed.children.push((inside, name));
                i += 3;
            } else if is_punct(t.get(i + 2), '{') {
                inside.push(name.clone());
                parsed.inline_modules.push(inside);
                depth += 1;
                scopes.push((name, depth));
                i += 3;
            } else {
                i += 1;
            }
        } else if is_ident(t.get(i), "use") && !is_punct(t.get(i + 1), '<') {
            let kind = PathKind::Use { reexport: is_public(&t, i) };
            let mut leaves = Vec::new();
            i = parse_use_tree(&t, i + 1, &[], &mut leaves);
            for (segments, binds, line) in leaves {
                parsed.paths.push(PathRef { scope: scope(&scopes), segments, kind, binds, line });
            }
        } else if is_punct(t.get(i), '{') {
            depth += 1;
            i += 1;
        } else if is_punct(t.get(i), '}') {
            if scopes.last().is_some_and(|&(_, d)| d == depth) {
                scopes.pop();
            }
            depth -= 1;
            i += 1;
        } else if ident(t.get(i)).is_some() && t.get(i + 1).is_some_and(|n| n.tok == Tok::PathSep) {
            let after_sep = i > 0 && t[i - 1].tok == Tok::PathSep;
            let (end, segments) = code_path(&t, i);
            if !after_sep {
                parsed.paths.push(PathRef {
                    scope: scope(&scopes),
                    segments,
                    kind: PathKind::Code,
                    binds: None,
                    line: t[i].line,
                });
            }
            i = end;
        } else {
            i += 1;
        }
    }
    parsed
}

/// The attribute whose `#` is at `i`: where it ends, whether it is inner (`#![..]`) and
/// whether it marks test code (`#[test]`, or a `cfg` that needs `test`).
fn attribute(t: &[Token<'_>], i: usize) -> (usize, bool, bool) {
    let inner = is_punct(t.get(i + 1), '!');
    let open = if inner { i + 2 } else { i + 1 };
    if !is_punct(t.get(open), '[') {
        return (i + 1, false, false); // a `#` of a macro's body, say
    }
    let close = matching(t, open);
    let body = &t[open + 1..close];
    let is_path = body.iter().all(|b| matches!(b.tok, Tok::Ident(_) | Tok::PathSep));
    let test = match body.first().and_then(|b| ident(Some(b))) {
        Some("cfg") => cfg_needs_test(&body[1..]),
        _ => is_path && ident(body.last()) == Some("test"), // `#[test]`, `#[tokio::test]`
    };
    (close + 1, inner, test)
}

/// Whether a `cfg(..)` predicate mentions `test` other than under `not(..)`:
/// `cfg(test)`, `cfg(any(test, feature = "shuttle"))`, `cfg(all(test, ..))`.
fn cfg_needs_test(predicate: &[Token<'_>]) -> bool {
    // The operator (`any`, `all`, `not`) of each open parenthesis.
    let mut operators: Vec<&str> = Vec::new();
    let mut last_word = "";
    for tok in predicate {
        match &tok.tok {
            Tok::Punct(b'(') => operators.push(last_word),
            Tok::Punct(b')') => _ = operators.pop(),
            Tok::Ident("test") if !operators.contains(&"not") => return true,
            Tok::Ident(w) => last_word = w,
            _ => {}
        }
    }
    false
}

/// The index of the bracket that closes the one at `open` (`(`, `[` or `{`).
fn matching(t: &[Token<'_>], open: usize) -> usize {
    let mut depth = 0;
    for (j, tok) in t.iter().enumerate().skip(open) {
        match tok.tok {
            Tok::Punct(b'(' | b'[' | b'{') => depth += 1,
            Tok::Punct(b')' | b']' | b'}') => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    t.len() - 1
}

fn skip_attributes(t: &[Token<'_>], mut i: usize) -> usize {
    while is_punct(t.get(i), '#') && is_punct(t.get(i + 1), '[') {
        i = matching(t, i + 1) + 1;
    }
    i
}

/// Past the item that starts at `i`: at its `;`, or at the `}` of its body.
fn skip_item(t: &[Token<'_>], mut i: usize) -> usize {
    while i < t.len() {
        match t[i].tok {
            Tok::Punct(b';') => return i + 1,
            Tok::Punct(b'{') => return matching(t, i) + 1,
            Tok::Punct(b'(' | b'[') => i = matching(t, i) + 1,
            _ => i += 1,
        }
    }
    i
}

/// The name of the module declared by the item at `i` (`mod x`, `pub(crate) mod x`), if it is one.
fn module_declared_at<'a>(t: &[Token<'a>], mut i: usize) -> Option<&'a str> {
    if is_ident(t.get(i), "pub") {
        i += 1;
        if is_punct(t.get(i), '(') {
            i = matching(t, i) + 1;
        }
    }
    if is_ident(t.get(i), "mod") { ident(t.get(i + 1)) } else { None }
}

/// Whether the `use` at `i` is `pub` or `pub(..)`.
fn is_public(t: &[Token<'_>], i: usize) -> bool {
    if i >= 1 && is_ident(t.get(i - 1), "pub") {
        return true;
    }
    if i >= 1 && is_punct(t.get(i - 1), ')') {
        // Back to the `(` of `pub(crate)`, `pub(super)`, `pub(in path)`.
        let open = (0..i - 1).rev().find(|&j| is_punct(t.get(j), '('));
        return open.is_some_and(|j| j >= 1 && is_ident(t.get(j - 1), "pub"));
    }
    false
}

/// Parses the use tree at `i` (after `use`, or inside a `{..}` group) under `prefix`, adding
/// one `(segments, binds, line)` per leaf; returns the index past it (past `;` at the top).
/// `a::{b, c::{self, d as e}, f::*}` → `a::b` (b), `a::c` (c), `a::c::d` (e), `a::f` (none).
fn parse_use_tree(
    t: &[Token<'_>],
    mut i: usize,
    prefix: &[String],
    leaves: &mut Vec<(Vec<String>, Option<String>, usize)>,
) -> usize {
    let mut segments = prefix.to_vec();
    if prefix.is_empty() && t.get(i).is_some_and(|x| x.tok == Tok::PathSep) {
        segments.push("::".into()); // `use ::name`: an extern crate
        i += 1;
    }
    while let Some(word) = ident(t.get(i)) {
        segments.push(word.to_string());
        i += 1;
        if t.get(i).is_some_and(|x| x.tok == Tok::PathSep) {
            i += 1;
        } else {
            break;
        }
    }
    let line = t.get(i.saturating_sub(1)).map_or(0, |x| x.line);
    if is_punct(t.get(i), '{') {
        i += 1;
        while !is_punct(t.get(i), '}') && i < t.len() {
            i = parse_use_tree(t, i, &segments, leaves);
            if is_punct(t.get(i), ',') {
                i += 1;
            }
        }
        i += 1;
    } else if is_punct(t.get(i), '*') {
        leaves.push((segments, None, line));
        i += 1;
    } else {
        if segments.last().is_some_and(|s| s == "self") {
            segments.pop();
        }
        let mut binds = segments.last().cloned();
        if is_ident(t.get(i), "as") {
            binds = ident(t.get(i + 1)).filter(|&a| a != "_").map(str::to_string);
            i += 2;
        }
        leaves.push((segments, binds, line));
    }
    if prefix.is_empty() && is_punct(t.get(i), ';') {
        i += 1;
    }
    i
}

/// The path in code at `i`: `a::b::C`, up to a turbofish (`::<`), a group or a glob.
fn code_path(t: &[Token<'_>], mut i: usize) -> (usize, Vec<String>) {
    let mut segments = vec![ident(t.get(i)).unwrap().to_string()];
    i += 1;
    while t.get(i).is_some_and(|x| x.tok == Tok::PathSep) {
        match ident(t.get(i + 1)) {
            Some(word) => segments.push(word.to_string()),
            None => break,
        }
        i += 2;
    }
    (i, segments)
}

#[test]
fn parser_reads_uses_paths_and_skips_test_code() {
    let parsed = parse_file(
        r##"
        //! Docs naming `crate::docs::X` make no path.
        use std::sync::Arc;
        use crate::{a, b::{self, c::D as E}, f::*};
        pub(crate) use super::g::H;
        const S: &str = "crate::in_string::X"; const R: &str = r#"crate::raw::X"#; const C: char = '"';
        fn f<'a>(x: &'a str) -> [u8; 2] { crate::inline::call::<u8>(); self::kid::Y::new(); [0; 2] }
        mod kid;
        #[cfg(not(test))] mod live;
        #[cfg(any(test, feature = "shuttle"))] mod shuttle_only;
        #[cfg(test)] fn helper() { crate::test_only::x(); }
        mod tests { use crate::tested::X; }
        mod inline { use super::up::X; }
        "##,
    );
    let children: Vec<&str> = parsed.children.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(children, ["kid", "live"]);
    assert_eq!(parsed.inline_modules, [vec!["inline".to_string()]]);
    let test_modules: Vec<&str> = parsed.test_modules.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(test_modules, ["shuttle_only", "tests"]);
    let paths: Vec<String> = parsed
        .paths
        .iter()
        .map(|p| format!("{:?} {:?} {} {:?}", p.scope, p.kind, p.segments.join("::"), p.binds))
        .collect();
    assert_eq!(
        paths,
        [
            r#"[] Use { reexport: false } std::sync::Arc Some("Arc")"#,
            r#"[] Use { reexport: false } crate::a Some("a")"#,
            r#"[] Use { reexport: false } crate::b Some("b")"#,
            r#"[] Use { reexport: false } crate::b::c::D Some("E")"#,
            r#"[] Use { reexport: false } crate::f None"#,
            r#"[] Use { reexport: true } super::g::H Some("H")"#,
            r#"[] Code crate::inline::call None"#,
            r#"[] Code self::kid::Y::new None"#,
            r#"["inline"] Use { reexport: false } super::up::X Some("X")"#,
        ]
    );
}
