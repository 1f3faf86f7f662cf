//! Worker identities (`host:pid:n`), so the embedded store can tell that a lease belongs
//! to a process on this machine that no longer exists and reclaim it at once.

use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn host() -> String {
    hostname::get().map(|h| h.to_string_lossy().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// A new worker id for this process.
pub fn new_worker_id() -> String {
    format!("{}:{}:{}", host(), std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// True if `owner` names a process on this host that has exited.
pub fn owner_is_dead_local_process(owner: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (_n, pid, h) = (parts.next(), parts.next(), parts.next());
    match (h, pid.and_then(|p| p.parse::<u32>().ok())) {
        (Some(h), Some(pid)) if h == host() => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_foreign_hosts_unknown() {
        let me = new_worker_id();
        assert!(!owner_is_dead_local_process(&me));
        let dead = format!("{}:{}:0", host(), u32::MAX - 7);
        assert!(owner_is_dead_local_process(&dead));
        assert!(!owner_is_dead_local_process("other-host:1:0"));
        assert!(!owner_is_dead_local_process("garbage"));
    }
}
