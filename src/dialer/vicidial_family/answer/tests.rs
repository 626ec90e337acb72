use super::*;

fn text(body: &str) -> Vec<Line> {
    parse_lines(body).unwrap()
}

fn decisive(lines: &[Line]) -> &Line {
    super::decisive(lines).unwrap()
}

#[test]
fn text_answers_are_keyed_on_their_prefix() {
    let lines = text("SUCCESS: add_user USER HAS BEEN ADDED - api|1000|9999|1|Testing Person|AGENTS\n");
    assert_eq!(lines[0].prefix, Prefix::Success);
    assert_eq!(lines[0].what(), "USER HAS BEEN ADDED");
    let lines = text("ERROR: add_user USER ALREADY EXISTS - api|api");
    assert_eq!(decisive(&lines).prefix, Prefix::Error);
    assert_eq!(lines[0].what(), "USER ALREADY EXISTS");
    let lines = text("SUCCESS: update_user USER HAS BEEN UPDATED - api|1000\nNOTICE: update_user something\n");
    assert_eq!(lines.len(), 2);
    assert_eq!(decisive(&lines).prefix, Prefix::Success);
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
    assert_eq!(decisive(&lines).prefix, Prefix::Success);
    assert_eq!(lines[0].what(), "USER HAS BEEN ADDED");
    // An unprefixed stray line is an error only if it is a login answer.
    let lines = text("SUCCESS: update_user USER HAS BEEN UPDATED - api|1000\nsome note - a|LOCK|\n");
    assert_eq!(lines.len(), 1);
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
fn admin_errors_read_alike_in_both_separator_forms() {
    use Refusal::*;
    // (reason and data, subject, meaning): each line is tried with `: |` (the stock source) and
    // ` - ` (the Elision seed, the stock document).
    let cases = [
        ("add_user USER ALREADY EXISTS", "apiuser|NEWAGENT", Subject::Agent, AgentExists),
        ("add_user USER GROUP DOES NOT EXIST", "apiuser|NOPE", Subject::Agent, UserGroupNotFound),
        ("add_user YOU MUST USE ALL REQUIRED FIELDS", "apiuser|a2|x|1|A|AGENTS", Subject::Agent, InvalidField("agent")),
        ("add_user USER DOES NOT HAVE PERMISSION TO ADD USERS", "noperm|0", Subject::Agent, PermissionDenied),
        (
            "add_user USER DOES NOT HAVE PERMISSION TO ADD USERS IN THIS USER LEVEL",
            "apiuser|8|8",
            Subject::Agent,
            LevelNotBelowApiUser,
        ),
        ("update_user USER DOES NOT EXIST", "apiuser|", Subject::Agent, AgentNotFound),
        (
            "update_user USER DOES NOT HAVE PERMISSION TO UPDATE THIS USER",
            "apiuser|boss|<=|8",
            Subject::Agent,
            AgentOutranksApiUser,
        ),
        ("update_user USER DOES NOT HAVE PERMISSION TO DELETE USERS", "salesapi|0", Subject::Agent, PermissionDenied),
        (
            "update_user YOU MUST USE A VALID USER GROUP, THIS IS AN OPTIONAL FIELD",
            "apiuser|FAKEGROUP|0",
            Subject::Agent,
            UserGroupNotFound,
        ),
        (
            "update_user YOU MUST USE A VALID USER LEVEL, THIS IS AN OPTIONAL FIELD",
            "apiuser|9|8|1",
            Subject::Agent,
            InvalidField("agent.level"),
        ),
        (
            "update_user ACTIVE MUST BE Y OR N, THIS IS AN OPTIONAL FIELD",
            "apiuser|YES",
            Subject::Agent,
            InvalidField("agent.active"),
        ),
        ("update_user NO UPDATES DEFINED", "apiuser|", Subject::Agent, Other),
        ("add_list USER DOES NOT HAVE PERMISSION TO ADD LISTS", "noperm|0", Subject::List, PermissionDenied),
        ("add_list YOU MUST USE ALL REQUIRED FIELDS", "apiuser|1235||TESTCAMP", Subject::List, InvalidField("list")),
        ("add_list CAMPAIGN DOES NOT EXIST", "apiuser|TESTCIMP", Subject::List, CampaignNotFound),
        ("add_list LIST ALREADY EXISTS", "apiuser|1234", Subject::List, ListExists),
        ("list_info LIST DOES NOT EXIST", "apiuser|4444", Subject::List, Other),
        (
            "add_lead USER DOES NOT HAVE PERMISSION TO ADD LEADS TO THE SYSTEM",
            "noperm|0|",
            Subject::Leads,
            PermissionDenied,
        ),
        (
            "auth USER DOES NOT HAVE PERMISSION TO USE THIS FUNCTION",
            "limited|add_user|",
            Subject::Agent,
            PermissionDenied,
        ),
    ];
    for (reason, data, subject, want) in cases {
        for sep in [": |", " - "] {
            let line = format!("ERROR: {reason}{sep}{data}");
            assert_eq!(classify_line(&line, subject), want, "{line}");
            assert_eq!(login_result(&line), None, "an admin line is never a login answer: {line}");
            assert_eq!(text(&line)[0].what(), reason.split_once(' ').unwrap().1, "{line}");
        }
    }
}

#[test]
fn data_that_reads_like_a_login_result_never_makes_an_admin_error_a_login_answer() {
    use Refusal::*;
    for (line, want) in [
        ("ERROR: add_user USER GROUP DOES NOT EXIST: |apiuser|LOCK", UserGroupNotFound),
        ("ERROR: add_user USER GROUP DOES NOT EXIST: |apiuser|LOCK|", UserGroupNotFound),
        ("ERROR: add_user USER ALREADY EXISTS: |apiuser|BAD|", AgentExists),
        ("ERROR: update_user USER DOES NOT EXIST: |apiuser|IPBLOCK|", AgentNotFound),
        ("ERROR: add_user USER ALREADY EXISTS: |apiuser|2FA|", AgentExists),
        ("ERROR: add_user USER ALREADY EXISTS: |apiuser|Login incorrect - x|BAD|", AgentExists),
    ] {
        assert_eq!(classify_line(line, Subject::Agent), want, "{line}");
    }
    // A success line with `LOCK` data is a success, in either form.
    let lines = text("SUCCESS: update_user USER HAS BEEN UPDATED - apiuser|LOCK|\n");
    assert_eq!(decisive(&lines).prefix, Prefix::Success);
}

#[test]
fn login_results_come_only_from_login_line_shapes() {
    let cases = [
        ("ERROR: Login incorrect, please try again: |apiuser|wrong|BAD|", Some(LoginResult::Refused)),
        ("ERROR: Login incorrect, please try again: |apiuser|wrong|2FA|", Some(LoginResult::TwoFactorPending)),
        ("ERROR: Too many login attempts, try again in 15 minutes: |boss|LOCK|", Some(LoginResult::Locked)),
        ("ERROR: Your IP Address is not allowed: 10.0.0.9: ||IPBLOCK|", Some(LoginResult::IpBlocked)),
        ("Too many login attempts, try again in 15 minutes: |api|LOCK|", Some(LoginResult::Locked)),
        // A password holding both separators does not move the verdict.
        ("ERROR: Login incorrect, please try again: |api|pa - ss: |x|BAD|", Some(LoginResult::Refused)),
        ("ERROR: Invalid Source: |x|", None),
        ("ERROR: NO FUNCTION SPECIFIED", None),
    ];
    for (line, want) in cases {
        assert_eq!(login_result(line), want, "{line}");
    }
    assert_eq!(classify_line(cases[1].0, Subject::Agent), Refusal::AuthFailed);
    assert_eq!(classify_line(cases[3].0, Subject::Agent), Refusal::ApiUserLocked);
    assert_eq!(
        classify_line("ERROR: Invalid Source: |x|", Subject::Agent),
        Refusal::Misconfigured("triggers.dialer.source")
    );
}

#[test]
fn data_fields_follow_the_first_separator() {
    let lines = text("SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275551212|1234|100001|-5.00|apiuser\n");
    assert_eq!(lines[0].data(), ["7275551212", "1234", "100001", "-5.00", "apiuser"]);
    let lines = text("ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 7275551212|1234|100001");
    assert_eq!(lines[0].what(), "DUPLICATE PHONE NUMBER IN LIST");
    assert_eq!(lines[0].data()[2], "100001");
    let lines = text("ERROR: add_user USER ALREADY EXISTS: |apiuser|NEW - AGENT");
    assert_eq!(lines[0].data(), ["apiuser", "NEW - AGENT"]);
}
