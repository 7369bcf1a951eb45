//! The Prometheus text exposition format, written by hand: `# HELP`/`# TYPE` lines and samples
//! with their labels escaped. Used on the control thread by the `/metrics` renderers.

use std::fmt::Write;

use sheaf_shard_runtime::CoreStats;

pub(super) struct Out(pub(super) String);

impl Out {
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
    /// One sample per core.
    pub(super) fn per_core(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        cores: &[CoreStats],
        f: impl Fn(&CoreStats) -> f64,
    ) {
        self.family(name, kind, help);
        for c in cores {
            self.sample(name, &[("core", &c.core.to_string())], f(c));
        }
    }
}
