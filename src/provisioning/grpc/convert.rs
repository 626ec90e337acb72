//! Domain values as the proto shows them.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::{
    proto::v1 as pb,
    provisioning::{provider::OrderState, store::StoredOrder},
};

pub(super) fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn state_pb(state: OrderState) -> pb::OrderState {
    match state {
        OrderState::Pending => pb::OrderState::Pending,
        OrderState::Completed => pb::OrderState::Completed,
        OrderState::Failed => pb::OrderState::Failed,
    }
}

pub(super) fn order_pb(o: &StoredOrder) -> pb::Order {
    pb::Order {
        order_id: o.order_id.clone(),
        state: state_pb(o.state).into(),
        company_id: o.company_id.clone(),
        numbers: o.numbers.clone(),
        message: o.message.clone(),
        history: o
            .history
            .iter()
            .map(|e| pb::OrderEvent {
                state: state_pb(e.state).into(),
                message: e.message.clone(),
                at: rfc3339(&e.at),
                source: e.source.clone(),
            })
            .collect(),
        created_at: rfc3339(&o.created_at),
        updated_at: rfc3339(&o.updated_at),
    }
}
