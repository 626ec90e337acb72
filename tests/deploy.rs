//! The deployment files stay true to the code: the Dockerfile builds with a command CI runs, and
//! the Kubernetes manifests name the settings, ports and probes the server has.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_dockerfiles_cargo_build_is_a_command_ci_runs() {
    let dockerfile = read("Dockerfile");
    let builds: Vec<&str> =
        dockerfile.lines().filter_map(|l| l.trim().strip_prefix("RUN ")).filter(|c| c.starts_with("cargo ")).collect();
    assert_eq!(builds.len(), 1, "one cargo build in the Dockerfile: {builds:?}");
    let ci = read(".ci/run");
    assert!(ci.lines().any(|l| l.trim() == builds[0]), "`{}` is not a line of .ci/run", builds[0]);
    assert!(builds[0].contains("--no-default-features"), "the image leaves the simulators out");
    assert!(dockerfile.contains("USER 10001"), "the image runs as a non-root user");
}

#[test]
fn the_manifests_probe_the_ops_listener_and_set_only_settings_the_server_reads() {
    let deployment = read("deploy/kubernetes/deployment.yaml");
    for probe in ["path: /healthz", "path: /readyz", "containerPort: 9090", "containerPort: 50051"] {
        assert!(deployment.contains(probe), "{probe}");
    }
    let main = read("src/main.rs");
    for name in deployment.lines().filter_map(|l| l.trim().trim_start_matches("# ").strip_prefix("- name: ")) {
        if name.starts_with("PATCHBAY_") || name == "DATABASE_URL" {
            assert!(main.contains(&format!("\"{name}\"")), "{name} is not a server setting");
        }
    }
    let dockerfile = read("Dockerfile");
    for line in dockerfile.lines().filter(|l| l.contains("PATCHBAY_")) {
        let name = line.trim().trim_start_matches("ENV ").split('=').next().unwrap().trim();
        assert!(main.contains(&format!("\"{name}\"")), "{name} is not a server setting");
    }
}
