//! Domain values as the proto shows them.

use crate::{
    ops::timestamp,
    proto::v1 as pb,
    provisioning::{provider::OrderState, store::StoredOrder},
};

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
                at: timestamp(e.at),
                source: e.source.clone(),
            })
            .collect(),
        created_at: timestamp(o.created_at),
        updated_at: timestamp(o.updated_at),
    }
}
