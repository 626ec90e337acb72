use super::*;
use crate::dialer::provider::{DialList, ExportShape};

fn shape() -> ExportShape {
    ExportShape {
        concurrency: 2,
        max_leads_per_call: 3,
        max_bytes_per_call: 100,
        takes_phone_code: false,
        resend_safe: false,
    }
}

fn send(idx: i32) -> Item {
    Item::Send { idx, lead: Lead { phone_number: "5550100".into(), ..Lead::default() } }
}

fn reject(idx: i32) -> Item {
    Item::Reject { idx, phone: "1".into(), error: "bad".into() }
}

fn idxs(chunk: &Chunk) -> Vec<i32> {
    chunk.items.iter().map(Item::idx).collect()
}

#[test]
fn chunks_close_at_the_lead_limit_and_carry_the_refused_leads_between() {
    let mut c = Chunker::new(shape());
    assert!(c.push(send(0), 10).is_none());
    assert!(c.push(reject(1), 0).is_none());
    assert!(c.push(send(2), 10).is_none());
    assert!(c.push(send(3), 10).is_none());
    let full = c.push(send(4), 10).expect("the fourth lead to send opens a new chunk");
    assert_eq!(idxs(&full), [0, 1, 2, 3]);
    assert_eq!(idxs(&c.take().unwrap()), [4]);
    assert!(c.take().is_none());
}

#[test]
fn chunks_close_at_the_byte_limit() {
    let mut c = Chunker::new(shape());
    assert!(c.push(send(0), 60).is_none());
    let full = c.push(send(1), 60).expect("120 bytes do not fit in 100");
    assert_eq!(idxs(&full), [0]);
    assert_eq!(idxs(&c.take().unwrap()), [1]);
}

#[test]
fn a_run_of_refused_leads_is_cut_too() {
    let mut c = Chunker::new(shape());
    let closed: Vec<Chunk> = (0..25).filter_map(|i| c.push(reject(i), 0)).collect();
    assert_eq!(closed.len(), 2);
    assert!(closed.iter().all(|ch| ch.items.len() == 12));
}

#[test]
fn targets_differ_in_their_digest_and_are_validated_under_their_path() {
    let new = |name: &str| {
        Target::New(DialList {
            list_id: "1101".into(),
            name: name.into(),
            campaign_id: "TESTCAMP".into(),
            active: true,
        })
    };
    assert_ne!(new("Test API list").digest(), new("Other list").digest());
    assert_ne!(Target::Existing("1101".into()).digest(), new("Test API list").digest());
    let e = Target::Existing("x".into()).validate(&crate::dialer::elision::wire::RULES).unwrap_err();
    assert_eq!(e.fields(), ["target.existing_list_id"]);
    assert_eq!(
        new("short").validate(&crate::dialer::elision::wire::RULES).unwrap_err().fields(),
        ["target.new_list.name"]
    );
}
