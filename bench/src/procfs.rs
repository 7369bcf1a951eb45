//! What the report reads from /proc: a process's CPU time, the kernel's UDP drop
//! counters, and a description of the machine.

use anyhow::Context;
use serde_json::{Value, json};

/// Clock ticks per second of /proc times: USER_HZ, which Linux fixes at 100 in its ABI.
const USER_HZ: f64 = 100.0;

/// utime + stime of `/proc/{pid}/stat` (all threads), in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path} (--pid)"))?;
    parse_stat(&text).with_context(|| format!("parsing {path}"))
}

/// utime + stime of the threads of `pid` whose name starts with `prefix`, in seconds (sheaf
/// names its shard cores `sheaf-core-<index>`, so `"sheaf-core-"` gives the shard cores'
/// time without the control, sink and forwarder threads). `None` when no thread matches.
pub(crate) fn threads_cpu_seconds(pid: u32, prefix: &str) -> Option<f64> {
    let mut total = None;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let path = task.path();
        let named = std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.starts_with(prefix));
        if let Some(secs) =
            named.then(|| std::fs::read_to_string(path.join("stat")).ok()).flatten().and_then(|t| parse_stat(&t))
        {
            *total.get_or_insert(0.0) += secs;
        }
    }
    total
}

pub(crate) fn self_cpu_seconds() -> Option<f64> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Fields 14 (utime) and 15 (stime) of a stat line; counted after the `)` that ends the
/// command name, which may itself contain spaces and parentheses.
fn parse_stat(text: &str) -> Option<f64> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state), so field n is at index n - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The kernel's UDP counters (`/proc/net/snmp`) that reveal datagrams dropped on receive.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UdpCounters {
    pub(crate) in_errors: u64,
    pub(crate) rcvbuf_errors: u64,
    pub(crate) sndbuf_errors: u64,
}

pub(crate) fn udp_counters() -> Option<UdpCounters> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().skip(1).collect();
    let values: Vec<u64> = lines.next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let get = |name: &str| names.iter().position(|n| *n == name).and_then(|i| values.get(i).copied()).unwrap_or(0);
    Some(UdpCounters {
        in_errors: get("InErrors"),
        rcvbuf_errors: get("RcvbufErrors"),
        sndbuf_errors: get("SndbufErrors"),
    })
}

/// nproc, CPU model, kernel release, memory.
pub(crate) fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let logical = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string());
    let mem_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    });
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpus_in_cpuinfo": logical,
        "cpu_model": model,
        "kernel": kernel,
        "mem_total_gib": mem_kib.map(|k| (k as f64 / 1048576.0 * 10.0).round() / 10.0),
        "loadavg": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_tricky_command_name() {
        let line = "1234 (sh eaf) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_stat(line), Some(3.0));
    }
}
