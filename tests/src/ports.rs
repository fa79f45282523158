//! Free loopback ports: bind port 0, note what the kernel picked, release it.
//!
//! Another process may grab a released port before our child binds it; callers detect
//! the bind failure and retry with fresh ports.

use std::net::{Ipv4Addr, TcpListener};

/// `N` distinct free ports on 127.0.0.1 (all held until all are picked).
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let mut held = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for p in &mut ports {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        *p = l.local_addr()?.port();
        held.push(l);
    }
    Ok(ports)
}

/// One free port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(free_ports::<1>()?[0])
}
