//! `cores:` (which CPUs run a shard executor each) and the CPUs this process may use. Pure
//! apart from reading the process's affinity mask; called at start on the main thread, and by
//! the host checks and `sheaf topology`.

use serde::{Deserialize, Deserializer};

use super::error::{ConfigError, invalid};

/// `cores: all` or `cores: [0, 1, 5]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cores {
    #[default]
    All,
    List(Vec<usize>),
}

impl<'de> Deserialize<'de> for Cores {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<usize>),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "all" => Ok(Cores::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!("expected `all` or a list of cpu ids, got {w:?}"))),
            Raw::List(l) => Ok(Cores::List(l)),
        }
    }
}

impl Cores {
    /// A list names at least one CPU, each once.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Cores::List(l) = self {
            if l.is_empty() {
                return Err(invalid("cores", "must name at least one cpu, or be `all`"));
            }
            let mut sorted = l.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != l.len() {
                return Err(invalid("cores", "lists a cpu twice"));
            }
        }
        Ok(())
    }

    /// The CPU ids that run shard executors; with `pin`, each listed CPU must be available.
    pub(super) fn cpus(&self, pin: bool) -> Result<Vec<usize>, ConfigError> {
        let online = online_cpus();
        match self {
            Cores::All => Ok(online),
            Cores::List(l) => {
                if pin && let Some(cpu) = l.iter().find(|c| !online.contains(c)) {
                    return Err(invalid(
                        "cores",
                        format!(
                            "cpu {cpu} is not available to this process (available: {online:?}); set pin_cores: false to run unpinned"
                        ),
                    ));
                }
                Ok(l.clone())
            }
        }
    }
}

/// CPUs this process may run on (its affinity mask).
pub fn online_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bitmask that sched_getaffinity fills; size matches the type.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; `set` is valid for writes of its own size.
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    if !ok {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    // SAFETY: CPU_ISSET only reads the mask filled above.
    (0..libc::CPU_SETSIZE as usize).filter(|c| unsafe { libc::CPU_ISSET(*c, &set) }).collect()
}
