use serde_json::json;

use super::*;

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
