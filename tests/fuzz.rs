//! Property tests (proptest) as fuzz targets, bounded so that CI runs them every time:
//! - the tenant-file loader, over mutations of the seed corpus in `tests/fuzz/corpus/` (the
//!   shipped tenant files plus hostile seeds: exponential aliases, YAML's rarer corners);
//! - request validation, over hostile gRPC requests sent to a real server.
//!
//! `PATCHBAY_FUZZ_CASES=20000 cargo test --release --test fuzz` runs longer. A failing case is
//! shrunk and saved by proptest in `tests/fuzz.proptest-regressions` (commit it: it is replayed
//! first on every later run).

mod common;

use std::{path::Path, sync::Arc};

use common::{DEMO_TOKEN, TestApp, authed};
use patchbay::{
    app::trigger_areas,
    proto::v1::{
        self as pb, account_service_client::AccountServiceClient, dialer_service_client::DialerServiceClient,
        provisioning_service_client::ProvisioningServiceClient,
    },
    registry::{BuildContext, Registry, secrets::SkipSecrets},
};
use proptest::{collection::vec, prelude::*, test_runner::TestRunner};
use tonic::Code;
use tonic_types::StatusExt;

/// Cases per property: small by default (CI), more on request.
fn cases(default: u32) -> u32 {
    std::env::var("PATCHBAY_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn config(default: u32) -> ProptestConfig {
    // source_file: where proptest keeps the shrunk failures (tests/fuzz.proptest-regressions).
    ProptestConfig { cases: cases(default), source_file: Some(file!()), ..ProptestConfig::default() }
}

/// The seed corpus: (file name the text validates as, text).
fn corpus() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let mut seeds: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 6, "the corpus is in tests/fuzz/corpus");
    seeds
}

/// One change to a tenant file's text.
#[derive(Debug, Clone)]
enum Edit {
    /// Insert a fragment at a byte position (taken modulo the length).
    Insert(usize, String),
    /// Remove up to `len` bytes.
    Delete(usize, usize),
    /// Replace one byte.
    Byte(usize, u8),
    /// Repeat the line at an index.
    DuplicateLine(usize),
    /// Indent the line at an index by some spaces.
    Indent(usize, usize),
}

/// Fragments that mean something to YAML or to patchbay's loader.
const FRAGMENTS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "!!binary ",
    "<<: ",
    "|",
    ">-",
    "\"",
    "'",
    "#",
    "\n",
    "\t",
    "---\n",
    "...\n",
    "~",
    "${env:X}",
    "${file:/nonexistent}",
    "${",
    "\u{0}",
    "\u{1b}[31m",
    "\r",
    "\u{feff}",
    "é",
    "  ",
    "tenant: other\n",
    "triggers:\n",
    "provider: vicidial\n",
    "enabled: maybe\n",
    "api_url: ftp://x\n",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), prop::sample::select(FRAGMENTS)).prop_map(|(at, f)| Edit::Insert(at, f.to_owned())),
        (any::<usize>(), any::<String>()).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 1..64usize).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Byte(at, b)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), 1..9usize).prop_map(|(line, n)| Edit::Indent(line, n)),
    ]
}

/// The text with the edits made (bytes; the result need not be UTF-8).
fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match e {
            Edit::Insert(i, s) => {
                let at = at(*i, bytes.len());
                bytes.splice(at..at, s.bytes());
            }
            Edit::Delete(i, n) => {
                let at = at(*i, bytes.len());
                let end = (at + n).min(bytes.len());
                bytes.drain(at..end);
            }
            Edit::Byte(i, b) if !bytes.is_empty() => {
                let at = i % bytes.len();
                bytes[at] = *b;
            }
            Edit::Byte(..) => {}
            Edit::DuplicateLine(i) | Edit::Indent(i, _) => {
                let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let at = i % lines.len();
                match e {
                    Edit::DuplicateLine(_) => {
                        let line = lines[at].clone();
                        lines.insert(at, line);
                    }
                    Edit::Indent(_, n) => {
                        lines[at].splice(0..0, std::iter::repeat_n(b' ', *n));
                    }
                    _ => unreachable!(),
                }
                bytes = lines.join(&b'\n');
            }
        }
    }
    bytes
}

fn registry() -> Registry {
    let build = BuildContext::standalone();
    Registry::new(tempfile::tempdir().unwrap().path(), trigger_areas(), build, Arc::new(SkipSecrets))
}

#[test]
fn the_seed_corpus_loads_as_expected_before_any_mutation() {
    let registry = registry();
    for (name, text) in corpus() {
        let problems = registry.validate_text(&name, &text);
        let hostile = matches!(name.as_str(), "laughs.yaml" | "tangled.yaml");
        assert_eq!(!problems.is_empty(), hostile, "{name}: {problems:#?}");
    }
}

#[test]
fn a_mutated_tenant_file_gets_located_one_line_diagnostics_never_a_panic() {
    let registry = registry();
    let seeds = corpus();
    let mut runner = TestRunner::new(config(400));
    let strategy = (0..seeds.len(), vec(edit(), 1..8));
    runner
        .run(&strategy, |(seed, edits)| {
            let (name, text) = &seeds[seed];
            let bytes = apply(text, &edits);
            // Text that is not UTF-8 reaches the loader as the server reads files: lossily.
            let text = String::from_utf8_lossy(&bytes);
            // Lines as YAML counts them: a lone CR breaks a line too.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
            let problems = registry.validate_text(name, &text);
            prop_assert!(problems.len() <= 101, "at most 100 problems and one 'more' line");
            for d in &problems {
                prop_assert!(!d.message.contains(['\n', '\r']), "one line: {:?}", d.message);
                prop_assert!(!d.message.contains('\u{1b}'), "no raw escape: {:?}", d.message);
                prop_assert!(d.line >= 1 && d.line <= lines + 1, "line {} of {lines}: {d:?}", d.line);
                prop_assert!(d.message.chars().count() <= 2_000, "a bounded message: {} chars", d.message.len());
            }
            Ok(())
        })
        .unwrap();
}

/// A string a hostile caller might send: anything, control characters and long runs included.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\x7f]{0,8}",
        "[a-z0-9@._-]{0,24}",
        (any::<char>(), 0..5000usize).prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// A request's answer: either success, or an error a caller can act on, with ErrorInfo, never an
/// INTERNAL or UNKNOWN (nothing here reaches a vendor fault) and never an unbounded message.
fn acceptable<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> Result<(), TestCaseError> {
    let Err(status) = answer else { return Ok(()) };
    prop_assert!(
        !matches!(status.code(), Code::Internal | Code::Unknown | Code::ResourceExhausted),
        "{:?}: {}",
        status.code(),
        status.message()
    );
    prop_assert!(status.get_error_details().error_info().is_some(), "ErrorInfo on {status:?}");
    prop_assert!(status.message().len() <= 2_048, "a capped message: {} bytes", status.message().len());
    Ok(())
}

#[test]
fn hostile_requests_are_answered_with_clear_codes_never_internal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(TestApp::builder().demo().spawn());
    let (dialer, account, provisioning) = (
        DialerServiceClient::new(app.channel.clone()),
        AccountServiceClient::new(app.channel.clone()),
        ProvisioningServiceClient::new(app.channel.clone()),
    );
    let mut runner = TestRunner::new(config(48));
    let strategy = (vec(hostile(), 12), vec(hostile(), 0..4), any::<i32>(), any::<i32>());
    runner
        .run(&strategy, |(s, paths, n, m)| {
            let mask = (!paths.is_empty()).then(|| prost_types::FieldMask { paths: paths.clone() });
            let agent = pb::Agent {
                user: s[0].clone(),
                password: s[1].clone(),
                level: n,
                full_name: s[2].clone(),
                group: s[3].clone(),
                phone_login: s[4].clone(),
                email: s[5].clone(),
                voicemail_id: s[6].clone(),
                ..Default::default()
            };
            let customer = pb::Customer {
                id: s[7].clone(),
                name: s[8].clone(),
                nickname: s[9].clone(),
                status: s[10].clone(),
                fields: [(s[11].clone(), s[0].clone())].into(),
            };
            rt.block_on(async {
                let create = pb::CreateAgentRequest {
                    tenant: "demo".into(),
                    agent: Some(agent.clone()),
                    request_id: s[11].clone(),
                };
                acceptable(dialer.clone().create_agent(authed(create, DEMO_TOKEN)).await)?;
                let update = pb::UpdateAgentRequest {
                    tenant: "demo".into(),
                    agent: Some(agent),
                    update_mask: mask.clone(),
                    request_id: s[10].clone(),
                };
                acceptable(dialer.clone().update_agent(authed(update, DEMO_TOKEN)).await)?;
                let lists =
                    pb::ListActiveListsRequest { tenant: "demo".into(), page_size: m, page_token: s[1].clone() };
                acceptable(dialer.clone().list_active_lists(authed(lists, DEMO_TOKEN)).await)?;
                let create = pb::CreateAccountRequest {
                    tenant: "demo".into(),
                    customer: Some(customer.clone()),
                    account_type: m,
                    billing_cycle_day: n,
                    dialing_behavior: n,
                    extension_length: m,
                    request_id: s[2].clone(),
                };
                acceptable(account.clone().create_account(authed(create, DEMO_TOKEN)).await)?;
                let rows = pb::ListSipLinesRequest {
                    tenant: "demo".into(),
                    customer: Some(customer),
                    page_size: n,
                    page_token: s[3].clone(),
                };
                acceptable(account.clone().list_sip_lines(authed(rows, DEMO_TOKEN)).await)?;
                let order = pb::ProvisionNumbersRequest {
                    tenant: "demo".into(),
                    who: Some(pb::provision_numbers_request::Who::CompanyId(s[4].clone())),
                    number_type: s[5].clone(),
                    count: n,
                    region: m,
                    order_summary_email: s[6].clone(),
                    terms_accepted: n % 2 == 0,
                    request_id: s[7].clone(),
                    ..Default::default()
                };
                acceptable(provisioning.clone().provision_numbers(authed(order, DEMO_TOKEN)).await)?;
                let update = pb::UpdateCustomerRequest {
                    tenant: "demo".into(),
                    company_id: s[8].clone(),
                    business_name: Some(s[9].clone()),
                    sms_message: Some(s[10].clone()),
                    transfer_time: Some(n),
                    transfer_type: m,
                    update_mask: mask,
                    request_id: s[11].clone(),
                    ..Default::default()
                };
                acceptable(provisioning.clone().update_customer(authed(update, DEMO_TOKEN)).await)?;
                let get = pb::GetOrderRequest { tenant: "demo".into(), order_id: s[0].clone() };
                acceptable(provisioning.clone().get_order(authed(get, DEMO_TOKEN)).await)?;
                let orders =
                    pb::ListOrdersRequest { tenant: "demo".into(), page_size: n, page_token: s[1].clone(), state: m };
                acceptable(provisioning.clone().list_orders(authed(orders, DEMO_TOKEN)).await)
            })
        })
        .unwrap();
}
