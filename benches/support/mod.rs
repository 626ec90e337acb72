//! What the benches that run `patchbay serve` as a child process share.

#![allow(dead_code)] // each bench uses a different part

use std::{net::TcpListener, path::Path, process::Child, time::Duration};

use tokio::time::Instant;

/// A free loopback port (the child binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// User and system CPU time of process `pid` (or `self`) so far, all threads (Linux `/proc`;
/// zero elsewhere).
pub fn cpu_of(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    // Fields after the `(comm)`, which may hold spaces: state is the first, utime and stime the
    // 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(") ").map_or(Vec::new(), |(_, rest)| rest.split(' ').collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / per_second)
}

/// Waits for the child's `/readyz` on its operations listener; panics with its log
/// (`dir/patchbay.log`) if it exits first.
pub async fn wait_healthy(ops: u16, child: &mut Child, dir: &Path) {
    let url = format!("http://127.0.0.1:{ops}/readyz");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(resp) = reqwest::get(&url).await
            && resp.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("patchbay.log")).unwrap_or_default();
            panic!("patchbay serve exited ({status}):\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("patchbay serve did not become healthy within 120 s");
}
