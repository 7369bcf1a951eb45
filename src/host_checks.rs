//! Start-up checks of host settings that cost throughput, logged as warnings, and the
//! pinning of non-shard threads (control, sinks) to `control_cpu`.

use crate::config::Config;

pub fn warnings(config: &Config, shard_cpus: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `lim` is a valid rlimit to fill.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0;
        // Registered buffers plus glommio's rings; it refuses to start below 512 KiB.
        let need = (config.data_plane.io_memory_bytes.max(64 << 10) as u64 + (256 << 10)) * shard_cpus.len() as u64;
        if ok && lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < need {
            out.push(format!(
                "RLIMIT_MEMLOCK is {} KiB but {} shard cores want about {} KiB of locked io_uring buffers: glommio will run without registered buffers; raise it (ulimit -l, or LimitMEMLOCK= in a systemd unit; see tuning/README.md)",
                lim.rlim_cur / 1024,
                shard_cpus.len(),
                need / 1024
            ));
        }
    }
    if config.statsd.udp.enabled
        && let Some(max) =
            std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok().and_then(|s| s.trim().parse::<usize>().ok())
        && max < config.statsd.udp.recv_buffer_bytes
        && !has_net_admin()
    {
        out.push(format!(
            "net.core.rmem_max is {max} bytes, below statsd.udp.recv_buffer_bytes ({}): the UDP socket buffers are capped and bursts will be dropped; sysctl -w net.core.rmem_max={}",
            config.statsd.udp.recv_buffer_bytes, config.statsd.udp.recv_buffer_bytes
        ));
    }
    if config.statsd.unix.path.is_some()
        && let Some(depth) = sheaf_shard_runtime::max_dgram_qlen()
        && depth < 512
    {
        out.push(format!(
            "net.unix.max_dgram_qlen is {depth}: the StatsD Unix socket queues at most {depth} datagrams, so senders block (or, non-blocking, drop) in any burst longer than that{}; sysctl -w net.unix.max_dgram_qlen=512 before sheaf starts",
            if depth < sheaf_shard_runtime::MIN_QUEUE_FOR_PAUSE { ", and statsd.unix.small_read_pause is skipped" } else { "" }
        ));
    }
    match config.control_cpu {
        Some(c) if shard_cpus.contains(&c) && config.pin_cores => out.push(format!(
            "control_cpu {c} is also a shard core: the control thread and sinks will take time from that core's ingest"
        )),
        None if config.pin_cores && shard_cpus.len() > 2 && crate::config::online_cpus().iter().all(|c| shard_cpus.contains(c)) => {
            out.push("every CPU runs a shard core and control_cpu is unset: the control thread and sink threads will preempt shard cores; see `sheaf topology` for a suggested pinning".into())
        }
        _ => {}
    }
    out
}

/// Pins the calling thread to `cpu` (control and sink threads), or says why it could not.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // CPU_SET below writes within the set: `cpu` is checked against CPU_SETSIZE first.
    // SAFETY: a zeroed cpu_set_t is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::other(format!("cpu {cpu} is out of range")));
    }
    // SAFETY: see above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the given size.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Whether this process has CAP_NET_ADMIN, with which the StatsD sockets get their buffer
/// size past `net.core.rmem_max` (`SO_RCVBUFFORCE`).
fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim().to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}
