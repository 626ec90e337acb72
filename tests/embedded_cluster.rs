//! The embedded cluster never outlives the server that owns it (issue 15, item 8): a postmaster
//! an operator started by hand on its data directory, after the server's own went away, is
//! stopped with the server.

use std::{
    os::unix::process::CommandExt,
    process::Command,
    time::{Duration, Instant},
};

use patchbay::store::{EmbeddedOptions, EmbeddedPostgres};

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_cluster_restarted_by_hand_under_the_server_is_stopped_with_it() {
    let root = std::env::temp_dir().join("patchbay-tests").join(format!("by-hand-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    // As root, PostgreSQL runs as `postgres`, which must traverse every folder above its data.
    use std::os::unix::fs::PermissionsExt;
    for dir in [root.parent().unwrap(), root.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut opts = EmbeddedOptions::new(root.join("pg"));
    opts.durable = false;
    let pg = EmbeddedPostgres::start(&opts).unwrap();
    let (ours, port) = (pg.pid(), pg.port());
    let data = root.join("pg").canonicalize().unwrap();

    // The server's postmaster goes away; an operator starts the cluster again by hand.
    // SAFETY: signalling the postmaster this test started.
    unsafe { libc::kill(ours as libc::pid_t, libc::SIGINT) };
    wait_until("our postmaster exits", || !alive(ours));
    let mut pg_ctl = Command::new("pg_ctl");
    pg_ctl.arg("-D").arg(&data).args(["-o", &format!("-p {port} -c listen_addresses=127.0.0.1"), "-l"]);
    pg_ctl.arg(data.join("by-hand.log")).args(["-w", "start"]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let out = Command::new("id").args(["-u", "postgres"]).output().unwrap();
        let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let out = Command::new("id").args(["-g", "postgres"]).output().unwrap();
        let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        pg_ctl.uid(uid).gid(gid);
    }
    assert!(pg_ctl.status().unwrap().success(), "pg_ctl start");
    let by_hand: u32 =
        std::fs::read_to_string(data.join("postmaster.pid")).unwrap().lines().next().unwrap().trim().parse().unwrap();
    assert!(alive(by_hand) && by_hand != ours);

    drop(pg);
    wait_until("the hand-started postmaster stops with the server", || !alive(by_hand));
    let _ = std::fs::remove_dir_all(&root);
}
