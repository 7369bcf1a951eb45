//! How the kernel spreads StatsD datagrams over the cores' `SO_REUSEPORT` sockets.
//!
//! By default it hashes the sender's address and port, so a datagram stream sticks to one
//! socket: with few senders (a relay, a handful of busy hosts) one core may receive, decode
//! and hand off everything while the others only aggregate. `distribute_by: cpu` attaches a
//! small classic-BPF program to the socket group instead: a datagram goes to the socket of
//! the core pinned to the CPU that received it (the one handling the NIC queue's interrupt,
//! or on loopback the sender's CPU); a CPU that runs no shard core maps to `cpu % cores`.
//! With NIC queues steered to the shard cores (see `tuning/`), each core then reads what its
//! own CPU received, while it is still in that CPU's cache.
//!
//! Sockets join a reuseport group in bind order, and the pool binds core 0 first, so socket
//! index i is core i. The program is attached once, to core 0's socket; the kernel keeps it
//! for the group.

use std::os::fd::RawFd;

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h; x86-64 and arm64 use the generic value).
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

/// The program: load the receiving CPU; for each core i, "if cpu == cpus[i] return i";
/// otherwise return `cpu % cpus.len()`.
pub(crate) fn program(cpus: &[usize]) -> Vec<libc::sock_filter> {
    let n = cpus.len().max(1) as u32;
    let mut p = Vec::with_capacity(2 * cpus.len() + 3);
    p.push(statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32));
    for (index, &cpu) in cpus.iter().enumerate() {
        // Equal: fall through to the return below it; not equal: skip it.
        p.push(libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: cpu as u32,
        });
        p.push(statement(libc::BPF_RET | libc::BPF_K, index as u32));
    }
    p.push(statement(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, n));
    p.push(statement(libc::BPF_RET | libc::BPF_A, 0));
    p
}

/// Attaches [`program`] to the reuseport group of `fd`.
pub(crate) fn attach_by_cpu(fd: RawFd, cpus: &[usize]) -> std::io::Result<()> {
    let mut filter = program(cpus);
    let len = u16::try_from(filter.len()).map_err(|_| std::io::Error::other("too many cores for the program"))?;
    let prog = libc::sock_fprog { len, filter: filter.as_mut_ptr() };
    // `prog` points at `filter`, `len` instructions long, both alive for the call; the kernel
    // copies the program and validates it.
    // SAFETY: a plain setsockopt with a correctly sized option value on an fd the caller owns.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&prog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

    fn reuseport_socket(addr: std::net::SocketAddr) -> UdpSocket {
        use socket2::{Domain, Protocol, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.set_reuse_port(true).unwrap();
        s.bind(&addr.into()).unwrap();
        // SAFETY: the fd was just released by `into_raw_fd` and is owned by nobody else.
        unsafe { UdpSocket::from_raw_fd(s.into_raw_fd()) }
    }

    fn pin_current_thread(cpu: usize) -> bool {
        // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes within it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `cpu` is checked against the set's capacity by the caller.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a valid cpu_set_t of the size passed.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0 }
    }

    fn allowed_cpus() -> Vec<usize> {
        // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid cpu_set_t of the size passed.
        if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
            return Vec::new();
        }
        // SAFETY: CPU_ISSET reads within the set for every index below CPU_SETSIZE.
        (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
    }

    #[test]
    fn the_program_maps_each_core_cpu_to_its_index_and_others_modulo() {
        let p = program(&[4, 6]);
        assert_eq!(p.len(), 1 + 2 * 2 + 2);
        assert_eq!((p[1].k, p[2].k), (4, 0));
        assert_eq!((p[3].k, p[4].k), (6, 1));
        assert_eq!(p[5].k, 2, "modulo the core count");
    }

    /// Loopback runs the receive path on the sender's CPU: a sender pinned to the CPU of core
    /// i must reach core i's socket only, whichever socket its flow hash would pick.
    #[test]
    fn datagrams_go_to_the_socket_of_the_receiving_cpu() {
        let cpus = allowed_cpus();
        if cpus.len() < 2 {
            eprintln!("skipped: needs 2 CPUs");
            return;
        }
        let cores = [cpus[0], cpus[1]];
        let first = reuseport_socket(([127, 0, 0, 1], 0).into());
        let addr = first.local_addr().unwrap();
        let second = reuseport_socket(addr);
        attach_by_cpu(first.as_raw_fd(), &cores).unwrap();
        for s in [&first, &second] {
            s.set_nonblocking(true).unwrap();
        }
        for (target, cpu) in cores.iter().enumerate() {
            let cpu = *cpu;
            std::thread::spawn(move || {
                assert!(pin_current_thread(cpu));
                // Several source ports, so that a flow hash alone would spread them.
                for _ in 0..8 {
                    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
                    for _ in 0..4 {
                        tx.send_to(b"x:1|c", addr).unwrap();
                    }
                }
            })
            .join()
            .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut buf = [0u8; 64];
            let mut got = [0usize; 2];
            for (i, s) in [&first, &second].iter().enumerate() {
                while s.recv(&mut buf).is_ok() {
                    got[i] += 1;
                }
            }
            let mut want = [0usize; 2];
            want[target] = 32;
            assert_eq!(got, want, "sent from cpu {cpu}, core {target}");
        }
    }
}
