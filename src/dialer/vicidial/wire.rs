//! Stock VICIdial's wire format, as its source (`non_agent_api.php`) writes it: function names,
//! the field rules where they differ from Elision's document, and the answers that are not the
//! family's SUCCESS/ERROR lines (version, list_info and campaigns_list rows) or whose data
//! patchbay reads (add_lead's lead id). Admin errors and login lines are read by
//! [`crate::dialer::vicidial_family::answer`], which Elision shares. Nothing here panics.

use crate::dialer::provider::{DialList, FieldRules};
use crate::dialer::vicidial_family::answer::{self, Line, Prefix};

/// ErrorInfo domain of what the dialer decided.
pub const DOMAIN: &str = "vicidial.org";
/// Where the script is on a stock install, below the web root.
pub const DEFAULT_PATH: &str = "/vicidial/non_agent_api.php";

pub const VERSION: &str = "version";
pub const ADD_USER: &str = "add_user";
pub const UPDATE_USER: &str = "update_user";
pub const ADD_LIST: &str = "add_list";
pub const LIST_INFO: &str = "list_info";
pub const CAMPAIGNS_LIST: &str = "campaigns_list";
pub const ADD_LEAD: &str = "add_lead";

/// The duplicate check every exported lead is sent with: the phone in the same list. A resend
/// after a lost answer then adds the lead or names the copy the first attempt made.
pub const DUPLICATE_CHECK: &str = "DUPLIST";

/// Bytes of one request body, at most (one lead is well under 2 KB; the simulator, like a web
/// server in front of PHP, refuses far bigger ones).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest answer read (list_info and campaigns_list rows are short; 1 MiB is generous).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The source's rules where they differ from Elision's document (`docs/NON-AGENT_API.txt` says
/// otherwise on each of these; the PHP is what runs): add_user's agent_pass 2+, update_user's
/// voicemail_id 2-10 and email 5-100, add_list's list_name 2-30 and campaign_id 1-8. Text
/// fields are stripped to fixed sets (non-Latin mode off, the default).
pub const RULES: FieldRules = FieldRules {
    source: "stock VICIdial",
    password: (2, 20),
    voicemail_id: (2, 10),
    email: (5, 100),
    list_name: (2, 30),
    campaign_id: (1, 8),
    strips_text: true,
    // The family's update_user (Elision derives from VICIdial's).
    clear: crate::dialer::vicidial_family::params::clearable,
};

/// A text answer: the family's lines, or rows of `|`-separated data (version, list_info,
/// campaigns_list answer their data without a prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    Lines(Vec<Line>),
    Rows(Vec<Vec<String>>),
}

/// Reads a text answer. `Err` says why it is not one.
pub fn parse(body: &str) -> Result<Text, String> {
    let body = body.trim_start_matches('\u{feff}').trim();
    if body.is_empty() {
        return Err("an empty answer".into());
    }
    if let Ok(lines) = answer::parse_lines(body) {
        return Ok(Text::Lines(lines));
    }
    if body.starts_with('<') || body.starts_with('{') {
        return Err("neither a SUCCESS/ERROR/NOTICE line nor data rows".into());
    }
    let rows = body.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| l.split('|').map(str::to_owned).collect());
    Ok(Text::Rows(rows.collect()))
}

/// `VERSION: 2.14-194|BUILD: 241004-1518|DATE: ...`: the version and build.
pub fn version(body: &str) -> Option<(String, String)> {
    let first = body.trim_start_matches('\u{feff}').trim().lines().next()?;
    let field = |name: &str| {
        first.split('|').find_map(|f| f.trim().strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_owned()))
    };
    Some((field("VERSION")?, field("BUILD").unwrap_or_default()))
}

/// A list_info row: `1101|Test API list|TESTCAMP|Y|2024-11-12 10:00:00||2099-12-31|0|`.
pub fn list_row(row: &[String]) -> Option<DialList> {
    match row {
        [id, name, campaign, active, ..] if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            Some(DialList {
                list_id: id.clone(),
                name: name.clone(),
                campaign_id: campaign.clone(),
                active: active == "Y",
            })
        }
        _ => None,
    }
}

/// What add_lead answered for its one lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadAnswer {
    /// `SUCCESS: add_lead LEAD HAS BEEN ADDED - phone|list|lead_id|gmt|user`.
    Added { lead_id: String },
    /// `ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - phone|list|lead_id`.
    InList { lead_id: String },
    /// Any other error line.
    Error(Line),
    /// A SUCCESS without a lead id where it should be: not an answer patchbay can rely on.
    Unreadable(&'static str),
}

/// The decisive line of an add_lead answer (NOTICEs such as ADDED TO HOPPER may follow).
pub fn lead_answer(lines: &[Line]) -> LeadAnswer {
    let Some(line) = answer::decisive(lines) else { return LeadAnswer::Unreadable("no answer line") };
    let lead_id = |at: usize| {
        line.data().get(at).map(|f| f.trim()).filter(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
    };
    let reason = answer::reason(&line.raw).to_ascii_uppercase();
    match line.prefix {
        Prefix::Success if reason.contains("LEAD HAS BEEN ADDED") => match lead_id(2) {
            Some(id) => LeadAnswer::Added { lead_id: id.to_owned() },
            None => LeadAnswer::Unreadable("a SUCCESS line without a lead id"),
        },
        // DUPPHONEALTLIST shares the wording; patchbay sends DUPLIST only, whose data ends at the id.
        Prefix::Error if reason.contains("DUPLICATE PHONE NUMBER IN LIST") => match lead_id(2) {
            Some(id) => LeadAnswer::InList { lead_id: id.to_owned() },
            None => LeadAnswer::Error(line.clone()),
        },
        Prefix::Error => LeadAnswer::Error(line.clone()),
        _ => LeadAnswer::Unreadable("neither a SUCCESS nor an ERROR line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(body: &str) -> Vec<Line> {
        match parse(body).unwrap() {
            Text::Lines(l) => l,
            Text::Rows(r) => panic!("rows: {r:?}"),
        }
    }

    #[test]
    fn the_version_answer_gives_version_and_build() {
        let body = "VERSION: 2.14-194|BUILD: 241004-1518|DATE: 2024-11-12 10:00:00|EPOCH: 1731423600|DST: 0|TZ: -5.00|TZNOW: -5.00|\n";
        assert_eq!(version(body), Some(("2.14-194".into(), "241004-1518".into())));
        assert_eq!(version("<html>"), None);
    }

    #[test]
    fn a_list_info_row_always_ending_with_a_delimiter_is_read() {
        let Text::Rows(rows) = parse("1101|Test API list|TESTCAMP|Y|2024-11-12 10:00:00||2099-12-31|0|\n").unwrap()
        else {
            panic!()
        };
        let list = list_row(&rows[0]).unwrap();
        assert_eq!(
            list,
            DialList {
                list_id: "1101".into(),
                name: "Test API list".into(),
                campaign_id: "TESTCAMP".into(),
                active: true
            }
        );
        assert_eq!(list_row(&["x".to_owned()]), None);
    }

    #[test]
    fn add_lead_answers_give_the_lead_id_of_an_added_lead_and_of_the_copy_in_the_list() {
        let added = lines(
            "SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275551212|1234|100001|-5.00|apiuser\nNOTICE: add_lead ADDED TO HOPPER - 7275551212|100001|5001|apiuser\n",
        );
        assert_eq!(lead_answer(&added), LeadAnswer::Added { lead_id: "100001".into() });
        let dup = lines("ERROR: add_lead DUPLICATE PHONE NUMBER IN LIST - 7275551212|1234|100001\n");
        assert_eq!(lead_answer(&dup), LeadAnswer::InList { lead_id: "100001".into() });
        let dnc = lines("ERROR: add_lead PHONE NUMBER IN DNC - 7275559999|apiuser\n");
        assert!(matches!(lead_answer(&dnc), LeadAnswer::Error(l) if l.what() == "PHONE NUMBER IN DNC"));
        let no_id = lines("SUCCESS: add_lead LEAD HAS BEEN ADDED - 7275551212|1234||-5.00|apiuser\n");
        assert!(matches!(lead_answer(&no_id), LeadAnswer::Unreadable(_)));
    }

    #[test]
    fn a_duplicate_in_the_campaign_or_system_is_an_error_not_a_copy_in_the_list() {
        let camp = lines("ERROR: add_lead DUPLICATE PHONE NUMBER IN CAMPAIGN LISTS - 7275551212|1101|100001|1234\n");
        assert!(matches!(lead_answer(&camp), LeadAnswer::Error(_)));
    }

    #[test]
    fn html_and_empty_bodies_are_not_answers() {
        assert!(parse("").is_err());
        assert!(parse("<html><body>Fatal error</body></html>").is_err());
    }
}
