//! Provider-registry figures: cold load of 10,000 tenant files, each with all three triggers
//! (time and peak memory), and the
//! reload of one changed file among 100, 1,000 and 10,000 (it must not grow with the count).
//!
//! Run: `cargo bench --bench registry`. Targets: cold load <= 0.5 s and <= 200 MB peak; one-file
//! reload <= 20 ms, flat in the number of tenants.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use patchbay::{
    ops::auth::TokenHash,
    registry::{BuildContext, Registry, secrets::SystemSecrets},
};

const TENANTS: usize = 10_000;

/// A tenant file as operators write them: two tokens (one being rotated in) and all three
/// triggers, each with its vendor client built at load.
fn tenant_file(i: usize, generation: u32) -> String {
    format!(
        "# yaml-language-server: $schema=../target/patchbay-tenant.schema.json\n\
         tenant: isp-{i:05}\n\
         name: Regional ISP {i} (rev {generation})\n\
         access:\n  tokens:\n    - \"{}\"\n    - \"{}\"\n\
         triggers:\n\
         \x20 account:\n\
         \x20   provider: alianza\n\
         \x20   api_url: https://api.alianza.com\n\
         \x20   admin_portal_url: https://admin.alianza.com\n\
         \x20   partition_id: partition-{i}\n\
         \x20   API_USERNAME: crm-{i}@isp.example\n\
         \x20   API_PASSWORD: alianza-secret-{i}\n\
         \x20   Account_Number_Field: nickname\n\
         \x20   status_map: {{ current: ACTIVE, trial: ACTIVE }}\n\
         \x20   account_defaults: {{ time_zone: US/Eastern, regulatory_type: RESIDENTIAL, \
         inbound_rate_plan_product_id: rp-{i}, dialing_behavior: TEN_DIGIT, billing_cycle_day: 1 }}\n\
         \x20   custom_sip_table: {{ dial_number: 101, display_name: 102, password: 103, port_number: 104, user_name: 105 }}\n\
         \x20 dialer:\n\
         \x20   provider: elision\n\
         \x20   api_url: http://dialer-{i}.isp.example/dialer/elision_api.php\n\
         \x20   source: crm\n\
         \x20   username: api\n\
         \x20   password: dialer-secret-{i}\n\
         \x20 provisioning:\n\
         \x20   provider: delacon\n\
         \x20   api_url: https://pla.delaconcorp.com/rest/config\n\
         \x20   auth_token: delacon-key-{i}\n\
         \x20   callback_secret: callback-secret-{i:05}-0123456789abcdef\n",
        TokenHash::of_token(&format!("isp-{i}-a")),
        TokenHash::of_token(&format!("isp-{i}-b")),
    )
}

fn write_tenants(dir: &Path, count: usize) {
    for i in 0..count {
        std::fs::write(dir.join(format!("isp-{i:05}.yaml")), tenant_file(i, 0)).unwrap();
    }
}

fn registry(dir: &Path) -> Registry {
    let build = BuildContext::standalone();
    Registry::new(dir, patchbay::app::trigger_areas(), build, Arc::new(SystemSecrets))
}

/// Peak resident memory of this process so far, in MiB (VmHWM).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

/// Child mode: load `dir` once and print "<seconds> <peak MiB before> <peak MiB after>".
fn cold_load_child(dir: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let validate_only = Instant::now();
    patchbay::registry::validate_dir(dir, &patchbay::app::trigger_areas(), &SystemSecrets).unwrap();
    eprintln!("validation alone (one thread): {:.0} ms", validate_only.elapsed().as_secs_f64() * 1000.0);
    let before = peak_rss_mib();
    let registry = registry(dir);
    let started = Instant::now();
    let report = registry.load(true).unwrap_or_else(|d| panic!("{} problems, first: {}", d.len(), d[0]));
    let elapsed = started.elapsed();
    assert_eq!(report.added.len(), registry.tenant_count());
    println!("{} {} {} {}", elapsed.as_secs_f64(), before, peak_rss_mib(), registry.tenant_count());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--cold-load-child") {
        cold_load_child(Path::new(&args[pos + 1]));
        return;
    }

    println!("patchbay registry benchmark ({} cores)", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let dir = tempfile::tempdir().unwrap();
    write_tenants(dir.path(), TENANTS);

    // Cold load, in a fresh process so that its peak memory is the load's own. Best of 3.
    let mut runs = Vec::new();
    for _ in 0..3 {
        let out =
            Command::new(std::env::current_exe().unwrap()).arg("--cold-load-child").arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<f64> = text.split_whitespace().map(|f| f.parse().unwrap()).collect();
        runs.push((fields[0], fields[1], fields[2], fields[3] as usize));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (secs, before, after, count) = runs[0];
    println!(
        "cold load of {count} tenant files: {:.0} ms (best of 3; runs: {}), peak RSS {:.1} MiB ({:.1} MiB before the load)",
        secs * 1000.0,
        runs.iter().map(|r| format!("{:.0} ms", r.0 * 1000.0)).collect::<Vec<_>>().join(", "),
        after,
        before
    );

    // One changed file among N: the time from the change to the new version being served.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    for count in [100, 1_000, TENANTS] {
        let dir = tempfile::tempdir().unwrap();
        write_tenants(dir.path(), count);
        let registry = registry(dir.path());
        registry.load(true).unwrap();
        let mut samples: Vec<Duration> = Vec::new();
        for round in 1..=50u32 {
            let i = (round as usize * 7919) % count;
            let path: PathBuf = dir.path().join(format!("isp-{i:05}.yaml"));
            std::fs::write(&path, tenant_file(i, round)).unwrap();
            let started = Instant::now();
            let report = registry.reload_paths(std::slice::from_ref(&path));
            samples.push(started.elapsed());
            assert_eq!(report.updated, [format!("isp-{i:05}")]);
            assert!(registry.get(&format!("isp-{i:05}")).unwrap().name.ends_with(&format!("(rev {round})")));
        }
        samples.sort();
        println!(
            "reload of one changed file among {count:>6}: median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(samples[samples.len() / 2]),
            ms(samples[samples.len() * 99 / 100]),
            ms(samples[samples.len() - 1])
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
