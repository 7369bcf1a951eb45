//! `sheaf topology`: the host's CPUs (sockets, NUMA nodes, SMT siblings) as Linux reports
//! them in sysfs, and a suggested pinning for shard cores and the control thread.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub id: usize,
    pub socket: usize,
    pub node: usize,
    pub core: usize,
    pub siblings: Vec<usize>,
}

/// Parses a sysfs CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<usize>().ok()),
        }
    }
    out
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The CPUs this process may run on, with their place in the machine.
pub fn cpus() -> Vec<Cpu> {
    let mut node_of = BTreeMap::new();
    if let Ok(nodes) = std::fs::read_dir("/sys/devices/system/node") {
        for n in nodes.flatten() {
            let name = n.file_name().to_string_lossy().to_string();
            if let Some(id) = name.strip_prefix("node").and_then(|i| i.parse::<usize>().ok()) {
                for cpu in parse_cpu_list(&read(n.path().join("cpulist")).unwrap_or_default()) {
                    node_of.insert(cpu, id);
                }
            }
        }
    }
    crate::config::online_cpus()
        .into_iter()
        .map(|id| {
            let base = format!("/sys/devices/system/cpu/cpu{id}/topology");
            let num = |f: &str| read(format!("{base}/{f}")).and_then(|s| s.trim().parse().ok()).unwrap_or(0);
            Cpu {
                id,
                socket: num("physical_package_id"),
                node: node_of.get(&id).copied().unwrap_or(0),
                core: num("core_id"),
                siblings: parse_cpu_list(
                    &read(format!("{base}/thread_siblings_list")).unwrap_or_else(|| id.to_string()),
                ),
            }
        })
        .collect()
}

/// Which CPUs to give the control thread and which the shard cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinning {
    pub control: Option<usize>,
    pub shards: Vec<usize>,
    pub note: String,
}

/// One shard core per physical core, the control thread (and sinks, and NIC interrupts)
/// on the first physical core of socket 0; on 2 CPUs or fewer everything shares.
pub fn suggest(cpus: &[Cpu]) -> Pinning {
    if cpus.len() <= 2 {
        return Pinning {
            control: None,
            shards: cpus.iter().map(|c| c.id).collect(),
            note: "2 CPUs or fewer: shard cores on every CPU; the control thread floats (it is idle but for the admin API)".into(),
        };
    }
    // First CPU of each physical core.
    let mut seen = std::collections::BTreeSet::new();
    let mut physical: Vec<&Cpu> = Vec::new();
    for c in cpus {
        if seen.insert((c.socket, c.core)) {
            physical.push(c);
        }
    }
    let control = physical[0];
    let shards: Vec<usize> = physical.iter().skip(1).map(|c| c.id).collect();
    let smt = cpus.len() > physical.len();
    let note = format!(
        "control thread, sink threads and NIC interrupts on cpu {}{}; one shard core per remaining physical core{}",
        control.id,
        if control.siblings.len() > 1 {
            format!(" (and its SMT siblings {:?})", control.siblings)
        } else {
            String::new()
        },
        if smt { ", SMT siblings left idle (they share a core's caches and ports)" } else { "" }
    );
    Pinning { control: Some(control.id), shards, note }
}

pub fn render(cpus: &[Cpu]) -> String {
    let mut out = String::new();
    let sockets: std::collections::BTreeSet<_> = cpus.iter().map(|c| c.socket).collect();
    let nodes: std::collections::BTreeSet<_> = cpus.iter().map(|c| c.node).collect();
    let _ = writeln!(out, "{} CPUs, {} socket(s), {} NUMA node(s)", cpus.len(), sockets.len(), nodes.len());
    let _ = writeln!(out, "{:>4} {:>6} {:>5} {:>5}  smt siblings", "cpu", "socket", "node", "core");
    for c in cpus {
        let _ = writeln!(out, "{:>4} {:>6} {:>5} {:>5}  {:?}", c.id, c.socket, c.node, c.core, c.siblings);
    }
    let p = suggest(cpus);
    let _ = writeln!(out, "\nsuggested pinning: {}", p.note);
    let _ = writeln!(out, "  cores: {:?}", p.shards);
    match p.control {
        Some(c) => {
            let _ = writeln!(out, "  control_cpu: {c}");
        }
        None => {
            let _ = writeln!(out, "  # control_cpu: unset");
        }
    }
    if nodes.len() > 1 {
        let _ = writeln!(
            out,
            "  NUMA: keep a NIC's interrupts and the shard cores that read its sockets on the NIC's node (see tuning/README.md)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
    }

    #[test]
    fn suggestion_keeps_control_off_shard_cores_and_skips_smt_siblings() {
        // 4 physical cores with 2 threads each: cpu i and i+4 are siblings.
        let cpus: Vec<Cpu> =
            (0..8).map(|id| Cpu { id, socket: 0, node: 0, core: id % 4, siblings: vec![id % 4, id % 4 + 4] }).collect();
        let p = suggest(&cpus);
        assert_eq!(p.control, Some(0));
        assert_eq!(p.shards, vec![1, 2, 3]);
        let two: Vec<Cpu> = (0..2).map(|id| Cpu { id, socket: 0, node: 0, core: id, siblings: vec![id] }).collect();
        assert_eq!(suggest(&two).shards, vec![0, 1]);
    }
}
