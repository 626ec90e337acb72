//! Domain values as the proto shows them, and the SIP passwords kept out of stored answers.

use crate::{
    account::{
        provider::{Account, AccountState, AccountType, SipLine},
        settings::{AccountSettings, SipTable},
        sip_sync::{self, StoredRow, SyncPlan},
    },
    ops::timestamp,
    proto::v1 as pb,
};

pub(super) fn state_pb(s: AccountState) -> pb::AccountState {
    match s {
        AccountState::Active => pb::AccountState::Active,
        AccountState::Disabled => pb::AccountState::Disabled,
        AccountState::Suspended => pb::AccountState::Suspended,
        AccountState::Pending => pb::AccountState::Pending,
        AccountState::DeletePending => pb::AccountState::DeletePending,
        AccountState::Deleted => pb::AccountState::Deleted,
        AccountState::Unknown => pb::AccountState::Unspecified,
    }
}

pub(super) fn line_pb(l: SipLine) -> pb::SipLine {
    pb::SipLine {
        line_number: l.line_number,
        sip_username: l.sip_username,
        sip_password: l.sip_password,
        display_name: l.display_name,
        emergency_number: l.emergency_number,
        mac_address: l.mac_address,
        dial_number: l.dial_number,
    }
}

pub(super) fn status_pb(
    a: Account,
    product_plans: Vec<String>,
    lines: Vec<SipLine>,
    settings: &AccountSettings,
) -> pb::AccountStatus {
    pb::AccountStatus {
        account_number: a.number,
        name: a.name,
        status: state_pb(a.state).into(),
        account_type: match a.account_type {
            Some(AccountType::Simple) => pb::AccountType::Simple,
            Some(AccountType::Advanced) => pb::AccountType::Advanced,
            None => pb::AccountType::Unspecified,
        }
        .into(),
        platform_type: a.platform_type,
        product_plans,
        billing_cycle_day: a.billing_cycle_day,
        calling_plans: a
            .calling_plans
            .into_iter()
            .map(|p| pb::CallingPlan {
                name: p.name,
                start_date: p.start_date.and_then(timestamp),
                plan_minutes: p.plan_minutes,
                seconds_remaining: p.seconds_remaining,
                user: p.user,
            })
            .collect(),
        sip_lines: lines.into_iter().map(line_pb).collect(),
        admin_portal_url: settings.admin_portal_url.clone(),
    }
}

pub(super) fn sync_response(plan: SyncPlan, table: &SipTable, dry_run: bool) -> pb::SyncSipLinesResponse {
    let rows = |rows: Vec<StoredRow>| rows.iter().map(|r| line_pb(sip_sync::line_of(r, table))).collect();
    pb::SyncSipLinesResponse {
        added: plan.added.into_iter().map(line_pb).collect(),
        updated: plan.updated.into_iter().map(line_pb).collect(),
        deleted: rows(plan.deleted),
        unchanged: plan.unchanged.into_iter().map(line_pb).collect(),
        dry_run,
        kept: rows(plan.kept),
    }
}

/// A sync's answer as the idempotency store keeps it: without SIP passwords, which are secrets.
pub(super) fn without_passwords(resp: &pb::SyncSipLinesResponse) -> pb::SyncSipLinesResponse {
    let mut copy = resp.clone();
    for line in sync_lines_mut(&mut copy) {
        line.sip_password.clear();
    }
    copy
}

pub(super) fn sync_lines_mut(resp: &mut pb::SyncSipLinesResponse) -> impl Iterator<Item = &mut pb::SipLine> {
    resp.added
        .iter_mut()
        .chain(resp.updated.iter_mut())
        .chain(resp.deleted.iter_mut())
        .chain(resp.unchanged.iter_mut())
        .chain(resp.kept.iter_mut())
}
