//! m3aggregator's own config, read unchanged: camelCase keys in M3's structure become sheaf's
//! config, key by key, by the table in [`keys`]. Keys with a meaning in sheaf are honoured;
//! keys that only tune Go internals are accepted and listed once in a warning; a key whose
//! behaviour sheaf cannot give, or one M3 does not have, is refused by name with the reason.
//! `sheaf check-config --explain FILE` prints what each key became ([`KeyNote`]). sheaf's own
//! top-level sections for what M3 has no key for (`cores`, `statsd`, `rules`, ...) may sit
//! beside M3's and are taken as they are; without a `statsd` section no StatsD port opens, as
//! with m3aggregator.
//!
//! Pure: runs on the main thread when a config is read.

mod keys;
mod note;
mod sections;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use super::error::{ConfigError, invalid};
use keys::{Conv, Rule, SECTIONS, Section, rule_for};
pub use note::{KeyNote, Outcome};
use note::{Step, go_duration, scalar};

/// An M3 config read as sheaf's: the tree to deserialise as [`super::Config`] and the notes.
#[derive(Debug)]
pub struct Translation {
    pub tree: Value,
    pub notes: Vec<KeyNote>,
}

/// Top-level sections of sheaf's own config that an M3 config may carry beside M3's keys.
const SHEAF_SECTIONS: &[&str] =
    &["cores", "pin_cores", "control_cpu", "num_shards", "statsd", "data_plane", "rules", "data_dir", "checkpoint"];

/// True when `tree` is written as an m3aggregator config: a camelCase key outside `rules:`
/// (whose schema is m3coordinator's, camelCase in either form), or a section only M3 has.
pub fn looks_like_m3(tree: &Value) -> bool {
    fn camel(v: &Value) -> bool {
        match v {
            Value::Object(map) => map.iter().any(|(k, v)| k.chars().any(|c| c.is_ascii_uppercase()) || camel(v)),
            Value::Array(items) => items.iter().any(camel),
            _ => false,
        }
    }
    let Value::Object(top) = tree else { return false };
    top.iter()
        .any(|(k, v)| k != "rules" && (matches!(k.as_str(), "kvClient" | "metrics" | "runtimeOptions") || camel(v)))
}

/// Reads the M3 config `tree` as sheaf's.
pub fn translate(tree: &Value) -> Result<Translation, ConfigError> {
    let mut t = Translator::default();
    let Value::Object(top) = tree else {
        return Err(invalid("(top level)", "an m3aggregator config is a mapping of sections"));
    };
    for (key, value) in top {
        if SHEAF_SECTIONS.contains(&key.as_str()) {
            // sheaf's own sections, for what M3 has no key for: taken as they are.
            t.note(key, value, Outcome::Became { key: key.clone(), value: scalar(value) });
            t.out.insert(key.clone(), value.clone());
            continue;
        }
        t.walk(key.clone(), key.clone(), value)?;
    }
    if !top.contains_key("statsd") {
        // m3aggregator opens no StatsD port; an M3 config opens one only with sheaf's section.
        set_path(&mut t.out, "statsd.udp.enabled", Value::Bool(false));
        set_path(&mut t.out, "statsd.tcp.enabled", Value::Bool(false));
    }
    t.finish()
}

#[derive(Default)]
struct Translator {
    out: Map<String, Value>,
    notes: Vec<KeyNote>,
    /// `kvClient.etcd.zone`, which picks the `etcdClusters` entry.
    zone: Option<String>,
    /// The `etcdClusters` list, read once the zone is known.
    etcd_clusters: Option<(String, Value)>,
}

impl Translator {
    /// `shown` is the key with indices (`a[2].b`), `pattern` the same with `[]`.
    fn walk(&mut self, shown: String, pattern: String, value: &Value) -> Result<(), ConfigError> {
        if let Some(rule) = rule_for(&pattern).or_else(|| covering_rule(&pattern)) {
            return self.apply(shown, &pattern, rule, value);
        }
        if !SECTIONS.contains(&pattern.as_str()) {
            return Err(invalid(shown, "not an m3aggregator key sheaf knows (check its spelling and place)"));
        }
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    self.walk(format!("{shown}.{k}"), format!("{pattern}.{k}"), v)?;
                }
                Ok(())
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.walk(format!("{shown}[{i}]"), format!("{pattern}[]"), v)?;
                }
                Ok(())
            }
            Value::Null => Ok(()),
            _ => Err(invalid(shown, "is a section: expected a mapping")),
        }
    }

    fn apply(&mut self, shown: String, pattern: &str, rule: Rule, value: &Value) -> Result<(), ConfigError> {
        match rule {
            Rule::To(target, conv) => {
                let converted = convert(&shown, conv, value)?;
                let target = with_indices(target, &shown);
                self.note(&shown, value, Outcome::Became { key: target.clone(), value: scalar(&converted) });
                set_path(&mut self.out, &target, converted);
            }
            Rule::Ignore(reason) => self.note(&shown, value, Outcome::Ignored(reason)),
            Rule::Expect(allowed, reason) => {
                if !allowed.contains(&scalar(value).as_str()) {
                    return Err(invalid(shown, format!("{} is not supported: {reason}", scalar(value))));
                }
                self.note(&shown, value, Outcome::AsSheafDoes(reason));
            }
            Rule::Read(Section::HostId) => self.take(sections::host_id(&shown, value)?),
            Rule::Read(Section::EtcdClusters) => self.etcd_clusters = Some((shown, value.clone())),
            Rule::Read(Section::FlushHandler) => self.take(sections::flush_handler(&shown, value)?),
        }
        if pattern == "kvClient.etcd.zone" {
            self.zone = value.as_str().map(str::to_owned);
        }
        Ok(())
    }

    fn note(&mut self, key: &str, value: &Value, outcome: Outcome) {
        let mut shown = scalar(value);
        if shown.len() > 40 && (value.is_object() || value.is_array()) {
            shown = if value.is_object() { "{...}".into() } else { "[...]".into() };
        }
        self.notes.push(KeyNote { key: key.to_owned(), value: shown, outcome });
    }

    fn take(&mut self, steps: Vec<Step>) {
        for step in steps {
            self.note(&step.key, &step.value, step.outcome);
            if let Some((target, value)) = step.set {
                set_path(&mut self.out, &target, value);
            }
        }
    }

    fn finish(mut self) -> Result<Translation, ConfigError> {
        if let Some((shown, clusters)) = self.etcd_clusters.take() {
            let steps = sections::etcd_clusters(self.zone.as_deref(), &shown, &clusters)?;
            self.take(steps);
        }
        // M3 has no admin authentication: its HTTP port is open wherever it listens. An M3
        // config keeps that (sheaf warns at start when no token is set).
        if self.out.contains_key("http") || self.out.contains_key("metrics") {
            set_path(&mut self.out, "http.allow_unauthenticated", Value::Bool(true));
        }
        Ok(Translation { tree: Value::Object(self.out), notes: self.notes })
    }
}

/// `sheaf check-config --explain`: one line per key, what it became.
pub fn explain(notes: &[KeyNote]) -> String {
    let width = notes.iter().map(|n| n.key.len() + n.value.len() + 2).max().unwrap_or(0).min(72);
    let mut out = String::new();
    for n in notes {
        let left = format!("{}: {}", n.key, n.value);
        let right = match &n.outcome {
            Outcome::Became { key, value } => format!("-> {key}: {value}"),
            Outcome::Ignored(reason) => format!("ignored: {reason}"),
            Outcome::AsSheafDoes(reason) => format!("as sheaf does: {reason}"),
        };
        out.push_str(&format!("{left:<width$}  {right}\n"));
    }
    out
}

/// The keys accepted and not applied, each once (a subtree by its section).
pub fn ignored_keys(notes: &[KeyNote]) -> Vec<String> {
    let mut keys: Vec<String> =
        notes.iter().filter(|n| matches!(n.outcome, Outcome::Ignored(_))).map(|n| n.key.clone()).collect();
    keys.dedup();
    keys
}

/// The `a.*` rule covering `pattern`, as a section or under one.
fn covering_rule(pattern: &str) -> Option<Rule> {
    if let Some(rule) = rule_for(&format!("{pattern}.*")) {
        return Some(rule);
    }
    let mut at = pattern;
    while let Some(dot) = at.rfind('.') {
        at = &at[..dot];
        if let Some(rule) = rule_for(&format!("{at}.*")) {
            return Some(rule);
        }
    }
    None
}

/// `target` with each `[]` replaced by the index at the same depth of `shown`.
fn with_indices(target: &str, shown: &str) -> String {
    let mut indices = shown.match_indices('[').map(|(at, _)| {
        let end = shown[at..].find(']').map_or(shown.len(), |e| at + e + 1);
        &shown[at..end]
    });
    let mut out = String::new();
    for (i, part) in target.split("[]").enumerate() {
        if i > 0 {
            out.push_str(indices.next().unwrap_or("[0]"));
        }
        out.push_str(part);
    }
    out
}

fn convert(key: &str, conv: Conv, value: &Value) -> Result<Value, ConfigError> {
    match conv {
        Conv::Same => Ok(value.clone()),
        Conv::Duration => go_duration(key, value).map(Value::String),
        Conv::Seconds => match value.as_u64() {
            Some(secs) => Ok(Value::String(format!("{secs}s"))),
            None => Err(invalid(key, "expected a whole number of seconds")),
        },
    }
}

/// Sets `path` (`a.b[2].c`) in `root`, creating what is missing on the way.
fn set_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut segments = Vec::new();
    for part in path.split('.') {
        match part.find('[') {
            Some(at) => {
                segments.push((part[..at].to_owned(), None));
                for index in part[at..].split('[').filter(|s| !s.is_empty()) {
                    let i = index.trim_end_matches(']').parse::<usize>().unwrap_or(0);
                    segments.push((String::new(), Some(i)));
                }
            }
            None => segments.push((part.to_owned(), None)),
        }
    }
    let mut slot = root.entry(segments[0].0.clone()).or_insert(Value::Null);
    for (name, index) in &segments[1..] {
        slot = match index {
            Some(i) => {
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                let items = slot.as_array_mut().expect("made an array above");
                while items.len() <= *i {
                    items.push(Value::Null);
                }
                &mut items[*i]
            }
            None => {
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                slot.as_object_mut().expect("made an object above").entry(name.clone()).or_insert(Value::Null)
            }
        };
    }
    *slot = value;
}
