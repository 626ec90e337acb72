//! The `patchbay` command as operators run it: `validate`, `schema`, `hash-token`.

use std::{path::Path, process::Command};

const TOKEN_HASH: &str = "sha256:7c43ef5ae21d43ce2743f770c68e24def1a43ee2f416d2438410c8af7af2ff2c";

fn patchbay(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_patchbay")).args(args).env("RUST_LOG", "off").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn validate(dir: &Path) -> (i32, String, String) {
    patchbay(&["validate", dir.to_str().unwrap()])
}

fn valid(tenant: &str) -> String {
    format!("tenant: {tenant}\naccess:\n  tokens: [\"{TOKEN_HASH}\"]\n")
}

#[test]
fn validate_accepts_the_shipped_providers_directory() {
    let (code, stdout, stderr) = patchbay(&["validate", concat!(env!("CARGO_MANIFEST_DIR"), "/providers.d")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("all valid"), "{stdout}");
}

#[test]
fn validate_accepts_the_commented_example_with_its_secrets_unresolved() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/providers.d/examples");
    let (code, stdout, stderr) = patchbay(&["validate", "--skip-secrets", dir]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn validate_skip_secrets_accepts_the_shipped_demo_and_still_checks_literal_secrets() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/providers.d");
    let (code, stdout, stderr) = patchbay(&["validate", "--skip-secrets", dir]);
    assert_eq!(code, 0, "references are not read, so their length is not checked: {stdout}{stderr}");

    let tenant = valid("acme").replace(
        "access:",
        "triggers:\n  provisioning:\n    provider: delacon\n    api_url: simulator\n    auth_token: ${env:ACME_NOT_SET}\n    callback_secret: too-short\naccess:",
    );
    let dir = dir_with(&[("acme.yaml", tenant.as_bytes())]);
    let (code, stdout, _) = patchbay(&["validate", "--skip-secrets", &dir.path().display().to_string()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("triggers.provisioning.callback_secret: too short"), "a literal is checked: {stdout}");
    assert!(!stdout.contains("auth_token"), "a reference is not: {stdout}");
}

#[test]
fn validate_reports_every_problem_of_every_file_with_positions_and_exits_1() {
    let dir = dir_with(&[
        ("acme.yaml", b"tenant: acme\naccess:\n  tokens: [\"not-a-hash\"]\nnmae: typo\n"),
        ("beta.yaml", b"tenant: beta\naccess: {tokens: [\n"),
        ("gamma.yaml", valid("gamma").as_bytes()),
    ]);
    let (code, stdout, stderr) = validate(dir.path());
    assert_eq!(code, 1);
    let acme = format!("{}/acme.yaml", dir.path().display());
    assert!(stdout.contains(&format!("{acme}:3:12: access.tokens[0]: must be `sha256:`")), "{stdout}");
    assert!(stdout.contains(&format!("{acme}:4:1: nmae: unknown field `nmae`")), "{stdout}");
    assert!(stdout.contains("beta.yaml:3:1: "), "malformed YAML is positioned: {stdout}");
    assert!(!stdout.contains("gamma.yaml"), "{stdout}");
    assert!(stderr.contains("3 problem(s) in 2 file(s)"), "{stderr}");
}

#[test]
fn validate_refuses_each_broken_providers_directory_saying_what_is_wrong_and_exits_1() {
    let (other, acme) = (valid("other"), valid("acme"));
    // The directory's files, or `None` for a directory that does not exist.
    type Dir<'a> = Option<&'a [(&'a str, &'a [u8])]>;
    // (the problem, as a spec; the directory; what the report must say)
    let cases: [(&str, Dir<'_>, &[&str]); 7] = [
        (
            "wrong types and missing keys are named",
            Some(&[("acme.yaml", b"tenant: acme\nname: [1, 2]\n")]),
            &[
                "acme.yaml:2:7: name: invalid type: sequence, expected a string",
                "acme.yaml:1:1: missing field `access`",
            ],
        ),
        (
            "a tenant that does not match its file name is refused",
            Some(&[("acme.yaml", other.as_bytes())]),
            &["acme.yaml:1:9: tenant: must equal the file name without its extension: `acme`"],
        ),
        (
            "two files claiming one tenant are refused",
            Some(&[("acme.yaml", acme.as_bytes()), ("acme.yml", acme.as_bytes())]),
            &["keep exactly one file per tenant"],
        ),
        (
            "a directory without tenant files is refused",
            Some(&[("README.txt", b"not a tenant")]),
            &["no tenant files (*.yaml or *.yml) in this directory"],
        ),
        ("a missing directory is refused", None, &["cannot read the providers directory"]),
        (
            "a file that is not UTF-8 is pointed at its first bad byte",
            Some(&[("acme.yaml", b"tenant: acme\nname: caf\xe9\n")]),
            &["acme.yaml:2:10: the file is not UTF-8 text; save it as UTF-8"],
        ),
        ("an empty file is explained", Some(&[("acme.yaml", b"# nothing yet\n")]), &["the file is empty"]),
    ];
    for (spec, files, words) in cases {
        let dir = files.map(dir_with);
        let (code, stdout, _) = validate(dir.as_ref().map_or(Path::new("/nonexistent/providers.d"), |d| d.path()));
        assert_eq!(code, 1, "{spec}: {stdout}");
        for words in words {
            assert!(stdout.contains(words), "{spec}: {stdout}");
        }
    }
}

#[test]
fn schema_prints_a_json_schema_of_the_tenant_file() {
    let (code, stdout, _) = patchbay(&["schema"]);
    assert_eq!(code, 0);
    let schema: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(schema["title"], "patchbay tenant file");
    assert_eq!(schema["additionalProperties"], false);
    for key in ["tenant", "name", "access", "triggers"] {
        assert!(schema["properties"].get(key).is_some(), "{key} missing from {stdout}");
    }
}

#[test]
fn hash_token_prints_the_form_tenant_files_take() {
    let (code, stdout, _) = patchbay(&["hash-token", "demo-token"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), TOKEN_HASH);
}

/// `patchbay sim <vendor>`: starts, prints its URL, answers as the vendor does, stops on SIGINT.
fn run_sim(vendor: &str, check: impl FnOnce(&str)) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchbay"))
        .args(["sim", vendor])
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
    check(url.trim());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn sim_elision_serves_the_dialer_api_with_the_demo_data() {
    run_sim("elision", |url| {
        let body = reqwest::blocking::Client::new()
            .post(url)
            .form(&[("function", "active_lists"), ("source", "test"), ("user", "api"), ("pass", "1234")])
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(body.contains(r#""success":true"#), "{body}");
    });
}

#[test]
fn sim_delacon_serves_the_provisioning_api_with_the_demo_data() {
    run_sim("delacon", |url| {
        let body = reqwest::blocking::Client::new()
            .post(format!("{url}/getnumbertypes/Japan"))
            .header("Auth", "demo-delacon-token")
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(body.contains(r#""Region":"ja-jp""#) && body.contains("NumberTypes"), "{body}");
    });
}

#[test]
fn serve_refuses_a_database_pool_size_outside_its_range_before_starting_anything() {
    for size in ["0", "1001", "many"] {
        let (code, _, stderr) = patchbay(&["serve", "--db-max-connections", size]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("--db-max-connections"), "names the setting: {stderr}");
    }
}
