//! The contract as a Python service developer meets it: tests/python/client.py generates stubs
//! from proto/ with grpcio-tools and drives a real server (both demo tenants on the simulators)
//! through every RPC, every List's pages, an update mask, rich errors, a deadline and
//! reflection. Its dependencies are in tests/python/requirements.txt (.ci/run installs them).

mod common;

use std::{path::Path, process::Command, time::Duration};

use common::{ADMIN_TOKEN, DEMO_TOKEN, TestApp};
use patchbay::{
    account::alianza::AlianzaSim,
    dialer::{elision::sim::ElisionSim, vicidial::sim::VicidialSim},
    sim::{Fault, FaultRule},
};

/// The account whose Alianza lookup never answers, for the deadline check.
const STALLED_ACCOUNT: &str = "555000111";

fn demo_vicidial_yaml() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("providers.d/demo-vicidial.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_calls_every_rpc_pages_every_list_clears_with_a_mask_and_meets_a_deadline() {
    let app = TestApp::builder().demo().file("demo-vicidial.yaml", demo_vicidial_yaml()).spawn().await;
    let alianza = app.sims.get::<AlianzaSim>().expect("the demo tenant's Alianza simulator");
    alianza.faults().set_hang_for(Duration::from_secs(30));
    alianza.faults().plan(FaultRule::new(Fault::Hang).matching(format!("/account/{STALLED_ACCOUNT}")));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py");
    let (addr, http_addr) = (app.grpc_addr.to_string(), app.http_addr.to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args(["--addr", &addr, "--http-addr", &http_addr, "--token", DEMO_TOKEN, "--admin-token", ADMIN_TOKEN])
            .args(["--stalled-account", STALLED_ACCOUNT])
            .output()
            .expect("python3 runs (CI installs tests/python/requirements.txt)")
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the Python client failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("RPCs called"), "{stdout}");

    // The mask named `email` with no value: both dialers emptied it, and kept the name it did not name.
    let vicidial = app.sims.get::<VicidialSim>().unwrap();
    let agent = vicidial.user("py1000").expect("the VICIdial agent");
    assert_eq!((agent.email.as_str(), agent.full_name.as_str()), ("", "Py Agent"));
    let agent = app.sims.get::<ElisionSim>().unwrap().user("py1000").expect("the Elision agent");
    assert_eq!((agent.email.as_str(), agent.full_name.as_str()), ("", "Py Agent"));
    assert!(vicidial.user("py1001").is_none(), "DeleteAgent deleted the VICIdial agent");
}
