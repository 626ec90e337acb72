use serde_json::json;

use super::*;

fn text(body: &str) -> Vec<Line> {
    match parse(body).unwrap() {
        Answer::Text(lines) => lines,
        other => panic!("not text: {other:?}"),
    }
}

#[test]
fn text_answers_are_keyed_on_their_prefix() {
    let lines = text("SUCCESS: add_user USER HAS BEEN ADDED - api|1000|9999|1|Testing Person|AGENTS\n");
    assert_eq!(lines[0].prefix, Prefix::Success);
    assert_eq!(lines[0].what(), "USER HAS BEEN ADDED");
    let lines = text("ERROR: add_user USER ALREADY EXISTS - api|api");
    assert_eq!(Answer::decisive(&lines).unwrap().prefix, Prefix::Error);
    assert_eq!(lines[0].what(), "USER ALREADY EXISTS");
    let lines = text("SUCCESS: update_user USER HAS BEEN UPDATED - api|1000\nNOTICE: update_user something\n");
    assert_eq!(lines.len(), 2);
    assert_eq!(Answer::decisive(&lines).unwrap().prefix, Prefix::Success);
}

#[test]
fn login_and_lockout_lines_are_errors() {
    let lines = text("ERROR: Login incorrect, please try again: |api|wrong|BAD|\n");
    assert_eq!(lines[0].what(), "Login incorrect, please try again");
    assert_eq!(classify_line(&lines[0].raw, Subject::Agent), Refusal::AuthFailed);
    let lines = text("Too many login attempts, try again in 15 minutes: |api|LOCK|\n");
    assert_eq!(lines[0].prefix, Prefix::Error);
    assert_eq!(classify_line(&lines[0].raw, Subject::Leads), Refusal::ApiUserLocked);
    // The lockout is recognised by VICIdial's result word whatever the wording, and with a
    // password that holds the data separators.
    assert_eq!(
        classify_line("ERROR: Account temporarily unavailable: |api|LOCK|", Subject::Agent),
        Refusal::ApiUserLocked
    );
    assert_eq!(classify_line("ERROR: Login incorrect: |api|IPBLOCK|", Subject::List), Refusal::ApiUserLocked);
    assert_eq!(
        classify_line("ERROR: Login incorrect, please try again: |api|pa - ss|LOCK|BAD|", Subject::Agent),
        Refusal::AuthFailed
    );
}

#[test]
fn the_callers_data_in_an_answer_never_decides_its_meaning() {
    use Refusal::*;
    let cases = [
        // A user named like an error wording.
        ("ERROR: add_user USER ALREADY EXISTS - api|permission1", AgentExists),
        ("ERROR: update_user USER DOES NOT EXIST - api|Login incorrect", AgentNotFound),
        // A group holding VICIdial's lockout and login result words.
        ("ERROR: add_user USER GROUP DOES NOT EXIST - api|x|LOCK|y", UserGroupNotFound),
        ("ERROR: add_user USER GROUP DOES NOT EXIST - api|x: |BAD|", UserGroupNotFound),
        ("ERROR: add_user USER ALREADY EXISTS - api|TOO MANY LOGIN ATTEMPTS", AgentExists),
        (
            "ERROR: update_user YOU MUST USE A VALID USER GROUP, THIS IS AN OPTIONAL FIELD - api|IN THIS USER LEVEL|0",
            UserGroupNotFound,
        ),
    ];
    for (line, want) in cases {
        assert_eq!(classify_line(line, Subject::Agent), want, "{line}");
    }
    // A success line whose data holds `|LOCK|` stays a success.
    let lines = text("SUCCESS: add_user USER HAS BEEN ADDED - api|1000|9999|1|x|LOCK|\n");
    assert_eq!(Answer::decisive(&lines).unwrap().prefix, Prefix::Success);
    assert_eq!(lines[0].what(), "USER HAS BEEN ADDED");
    // An unprefixed stray line is an error only if it is a login answer.
    let lines = text("SUCCESS: update_user USER HAS BEEN UPDATED - api|1000\nsome note - a|LOCK|\n");
    assert_eq!(lines.len(), 1);
}

#[test]
fn garbage_is_an_error_and_never_a_panic() {
    for body in ["", "   ", "<html>oops</html>", "\u{1}<<garbage>>{\"unterminated", "{\"success\":", "[1,2"] {
        assert!(parse(body).is_err(), "{body:?}");
    }
    assert!(lead_outcomes(json!("text"), 1).is_err());
    assert!(lead_outcomes(json!([1, 2]), 1).is_err());
    assert!(lead_outcomes(json!({"success": 3}), 1).is_err());
}

#[test]
fn the_seeds_error_wordings_are_classified() {
    use Refusal::*;
    let cases = [
        ("ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS - api|0", Subject::Agent, PermissionDenied),
        ("ERROR: add_user YOU MUST USE ALL REQUIRED FIELDS - api|1000|", Subject::Agent, InvalidField("agent")),
        (
            "ERROR: add_user USER DOES NOT HAVE PERMISSION TO ADD USERS IN THIS USER LEVEL - api|8",
            Subject::Agent,
            LevelNotBelowApiUser,
        ),
        ("ERROR: add_user USER GROUP DOES NOT EXIST - api|ADFHR", Subject::Agent, UserGroupNotFound),
        ("ERROR: add_user USER ALREADY EXISTS - api|api", Subject::Agent, AgentExists),
        ("ERROR: update_user USER DOES NOT EXIST - api|78789", Subject::Agent, AgentNotFound),
        (
            "ERROR: update_user USER DOES NOT HAVE PERMISSION TO UPDATE THIS USER - api|7878",
            Subject::Agent,
            AgentOutranksApiUser,
        ),
        (
            "ERROR: update_user YOU MUST USE A VALID FULL NAME, THIS IS AN OPTIONAL FIELD - api|",
            Subject::Agent,
            InvalidField("agent.full_name"),
        ),
        (
            "ERROR: update_user YOU MUST USE A VALID USER LEVEL, THIS IS AN OPTIONAL FIELD - api|0|9|1",
            Subject::Agent,
            InvalidField("agent.level"),
        ),
        (
            "ERROR: update_user YOU MUST USE A VALID USER GROUP, THIS IS AN OPTIONAL FIELD - api|FAKEGROUP|0",
            Subject::Agent,
            UserGroupNotFound,
        ),
        (
            "ERROR: update_user YOU MUST USE A VALID PHONE LOGIN, THIS IS AN OPTIONAL FIELD - api|fakephone|0|0",
            Subject::Agent,
            InvalidField("agent.phone_login"),
        ),
        (
            "ERROR: update_user YOU MUST USE A VALID VOICEMAIL ID, THIS IS AN OPTIONAL FIELD - api",
            Subject::Agent,
            InvalidField("agent.voicemail_id"),
        ),
        (
            "ERROR: update_user YOU MUST USE A VALID EMAIL, THIS IS AN OPTIONAL FIELD - api",
            Subject::Agent,
            InvalidField("agent.email"),
        ),
        (
            "ERROR: update_user ACTIVE MUST BE Y OR N, THIS IS AN OPTIONAL FIELD - api",
            Subject::Agent,
            InvalidField("agent.active"),
        ),
        ("api User does not have permission to add list in the system", Subject::List, PermissionDenied),
        ("Please send list id , campaign id and list name", Subject::List, InvalidField("list")),
        ("TESTCAMP campaign does not exist", Subject::List, CampaignNotFound),
        ("1101 list already exist", Subject::List, ListExists),
        ("add_multi_lead YOU MUST USE ALL REQUIRED FIELDS", Subject::Leads, InvalidField("leads")),
        ("something new in version 3", Subject::Agent, Other),
    ];
    for (message, subject, want) in cases {
        assert_eq!(classify_line(message, subject), want, "{message}");
    }
}

#[test]
fn multi_lead_answers_give_one_outcome_per_lead() {
    let answer = json!({
        "lead 1": {"success": true, "message": "Record(s) Created", "data": "1234567893|1101|1036||NEW|"},
        "lead 2": {"success": false, "message": "Invalid phone number", "data": "1293"},
    });
    let LeadsAnswer::Outcomes(outcomes) = lead_outcomes(answer, 3).unwrap() else { panic!() };
    assert_eq!(outcomes[0], LeadOutcome::Accepted { lead_id: "1036".into() });
    assert_eq!(outcomes[1], LeadOutcome::Rejected { error: "Invalid phone number (1293)".into() });
    assert!(matches!(outcomes[2], LeadOutcome::Unknown { .. }));
    let refused = lead_outcomes(json!(["ERROR", "add_multi_lead YOU MUST USE ALL REQUIRED FIELDS", "api", ""]), 1);
    assert_eq!(refused.unwrap(), LeadsAnswer::Refused("add_multi_lead YOU MUST USE ALL REQUIRED FIELDS".into()));
}

#[test]
fn active_list_entries_split_at_the_first_dash_and_the_digits() {
    let p = |s| parse_active_list(s).unwrap();
    assert_eq!(p("NIKHIL-1101-Test API list"), ("NIKHIL".into(), "1101".into(), "Test API list".into()));
    assert_eq!(p("TESTING-20042018-20042018-hardik"), ("TESTING".into(), "20042018".into(), "20042018-hardik".into()));
    assert_eq!(p("test_plk-260518-260518 test"), ("test_plk".into(), "260518".into(), "260518 test".into()));
    assert_eq!(
        p("NIKHIL-26042018-26042018_custom-form"),
        ("NIKHIL".into(), "26042018".into(), "26042018_custom-form".into())
    );
    assert_eq!(p("C-12"), ("C".into(), "12".into(), String::new()));
    for bad in ["nodash", "-12-x", "CAMP-abc-x", "CAMP-12x"] {
        assert_eq!(parse_active_list(bad), None, "{bad}");
    }
}

#[test]
fn secrets_are_scrubbed_from_answers() {
    let s = Scrubber::new(["9999", "1234", "7"]);
    assert_eq!(
        s.scrub("SUCCESS: add_user USER HAS BEEN ADDED - api|1000|9999|7|Testing Person|AGENTS"),
        "SUCCESS: add_user USER HAS BEEN ADDED - api|1000|***|***|Testing Person|AGENTS"
    );
    assert_eq!(
        s.scrub("ERROR: Login incorrect, please try again: |api|1234|BAD|"),
        "ERROR: Login incorrect, please try again: |api|***|BAD|"
    );
    assert_eq!(s.scrub(r#"{"user":"api","password":"7"}"#), r#"{"user":"api","password":"***"}"#);
    // A short secret inside a longer token is left alone: it is not the secret.
    assert_eq!(s.scrub("list 1701"), "list 1701");
}

#[test]
fn escaped_echoes_of_a_secret_are_scrubbed_too() {
    let secret = "pa/ss\"w\\ö rd&<";
    let s = Scrubber::new([secret]);
    let echoes = [
        // serde_json's and PHP's json_encode (\/ and \u00f6 by default, either hex case).
        serde_json::to_string(&json!({ "p": secret })).unwrap(),
        r#"{"p":"pa\/ss\"w\\\u00f6 rd&<"}"#.to_owned(),
        r#"{"p":"pa\/ss\"w\\\u00F6 rd&<"}"#.to_owned(),
        r#"{"p":"pa/ss\"w\\\u00f6 rd&<"}"#.to_owned(),
        // Form- and percent-encoded, and HTML-escaped.
        "pass=pa%2Fss%22w%5C%C3%B6+rd%26%3C".to_owned(),
        "pass=pa%2Fss%22w%5C%C3%B6%20rd%26%3C".to_owned(),
        "<b>pa/ss&quot;w\\ö rd&amp;&lt;</b>".to_owned(),
    ];
    for echo in echoes {
        let scrubbed = s.scrub(&echo);
        assert!(scrubbed.contains("***"), "{echo} -> {scrubbed}");
        assert!(!scrubbed.contains("rd") && !scrubbed.contains('w'), "{echo} -> {scrubbed}");
    }
    // Short secrets are matched standalone in their escaped forms too.
    let s = Scrubber::new(["é"]);
    assert_eq!(s.scrub(r#"{"pass":"\u00e9","word":"caf\u00e9s"}"#), r#"{"pass":"***","word":"caf\u00e9s"}"#);
}

#[test]
fn password_fields_are_dropped_from_json_answers() {
    let Answer::Json(json) = parse(
        r#"{"success":false,"message":"api User does not have permission","data":{"user":"api","password":"x","nested":[{"agent_pass":"y","phone_pass":"z","ok":1}]}}"#,
    )
    .unwrap() else {
        panic!("not JSON")
    };
    assert_eq!(json["data"], json!({"user": "api", "nested": [{"ok": 1}]}));
}

#[test]
fn json_errors_never_quote_the_answer() {
    let err = serde_json::from_value::<Envelope>(json!({"success": "hunter2"})).unwrap_err();
    assert!(err.to_string().contains("hunter2"), "serde quotes values: the reason for json_why");
    assert!(!json_why(&err).contains("hunter2"));
    assert_eq!(
        lead_outcomes(json!({"success": "hunter2"}), 1).unwrap_err(),
        "not the JSON envelope (JSON of an unexpected shape)"
    );
    let LeadsAnswer::Outcomes(o) = lead_outcomes(json!({"lead 1": {"success": "hunter2"}}), 1).unwrap() else {
        panic!()
    };
    assert!(matches!(&o[0], LeadOutcome::Unknown { error } if !error.contains("hunter2")), "{o:?}");
    assert!(!parse(r#"{"p":"hunter2" x}"#).unwrap_err().contains("hunter2"));
}

#[test]
fn form_encoding_lengths_match_the_encoder() {
    // The same encoder reqwest's `.form()` uses (form_urlencoded, through `url`).
    let encoded = |s: &str| {
        let mut url = reqwest::Url::parse("http://x/").unwrap();
        url.query_pairs_mut().append_pair("k", s);
        url.query().unwrap().len() - "k=".len()
    };
    for s in ["abc XYZ-_.*", r#"[{"phone_number":"5550100","list_id":"1101"}]"#, "é ü|&=+%", ""] {
        assert_eq!(form_encoded_len(s), encoded(s), "{s}");
    }
}
