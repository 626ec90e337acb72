//! ProvisioningService: the gRPC edge. Requests are authenticated for their tenant, validated
//! field by field (every problem in one answer) before any vendor call, turned into domain types,
//! and mutations run under their idempotency key with an audit row. Generated types stop in this
//! folder: [`request`] holds the field rules (proto in, domain out), [`convert`] the way back.

mod convert;
mod request;

use std::{pin::Pin, sync::Arc, time::Duration};

use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Code, Request, Response, Status};

use super::{
    area::ProvisioningArea,
    provider::{NumberOrder, OrderState, ProviderError},
    store::{self, Submission},
    trigger::ProvisioningTrigger,
    watch::OrderHub,
};
use convert::*;
use request::*;

use crate::{
    ops::{ApiError, Violations, page, vendor_error::VendorFailure},
    platform::{AppState, Edge, TenantCall, call::check_request_id},
    proto::v1::{self as pb, provisioning_service_server::ProvisioningService},
    registry::Trigger,
};

/// The ProvisioningService implementation.
#[derive(Clone)]
pub struct ProvisioningGrpc {
    state: AppState,
    hub: OrderHub,
}

impl ProvisioningGrpc {
    /// Also starts this process's order watch hub (one LISTEN connection), which stops with the server.
    pub fn new(state: AppState) -> Self {
        let hub = OrderHub::start(state.db.clone(), state.shutdown.clone());
        Self { state, hub }
    }

    /// The watch hub, for tests and metrics.
    pub fn hub(&self) -> &OrderHub {
        &self.hub
    }
}

fn db_error(e: sqlx::Error) -> ApiError {
    ApiError::database("provisioning store", &e)
}

// ---- errors ----

/// What a vendor call was doing, for the caller's message.
#[derive(Clone, Copy)]
enum Action {
    Order,
    Update,
    Read,
}

/// The caller's error for a vendor's failure (the one policy of every area: see the README's
/// ProvisioningService section).
fn vendor_error(provider: &str, action: Action, mut err: ProviderError) -> ApiError {
    let detail = &err.fault.message;
    // The words are this area's (what the call was for); the code, reason and details are the
    // shared vocabulary's (`ops::vendor_error`).
    err.message = match &err.failure {
        VendorFailure::Invalid => format!("{provider} refused the request: {detail}"),
        VendorFailure::AuthFailed { .. } => format!(
            "{provider} refused the tenant's credentials (triggers.provisioning.auth_token); \
             an operator must fix the tenant file: {detail}"
        ),
        VendorFailure::PermissionDenied => format!("{provider} does not allow the tenant's key this: {detail}"),
        VendorFailure::Rejected => {
            let what = match action {
                Action::Order => "refused the order (nothing was placed)",
                Action::Update => "refused the update",
                Action::Read => "refused to answer",
            };
            format!("{provider} {what}: {detail}")
        }
        VendorFailure::Misconfigured { .. } => {
            format!("{provider} cannot be used as configured; an operator must fix the tenant file: {detail}")
        }
        VendorFailure::Unavailable { .. } => format!("{provider} is unavailable: {detail}"),
        VendorFailure::OutcomeUnknown => match action {
            Action::Order => format!(
                "{provider} gave no clear answer ({detail}): the order may or may not have been placed. \
                 patchbay will not send it again under this request_id (a retry answers FAILED_PRECONDITION \
                 ORDER_OUTCOME_UNKNOWN). {provider} has no call to look an order up, so GetOrder and \
                 ListOrders cannot show it: check the {provider} portal before ordering again with a new \
                 request_id"
            ),
            Action::Update => format!(
                "{provider} gave no clear answer ({detail}): the update may or may not have been applied. \
                 {provider} has no call to read a customer back (check its portal); the update only sets \
                 values, so sending it again is safe"
            ),
            Action::Read => format!("{provider} gave no clear answer: {detail}"),
        },
    };
    err.into()
}

fn order_not_found(order_id: &str) -> ApiError {
    ApiError::not_found("ORDER_NOT_FOUND", format!("no order `{order_id}` for this tenant"))
        .with_metadata("order_id", order_id.to_owned())
}

type Provisioning = Trigger<ProvisioningTrigger>;

/// How often an open WatchOrder re-reads its order without being told of a change.
const WATCH_RECHECK: Duration = Duration::from_secs(10);

/// How long past the vendor's timeout a submission still counts as in flight: the time to store
/// the answer, on a loaded database.
const ANSWER_MARGIN: Duration = Duration::from_secs(30);

impl ProvisioningGrpc {
    /// The edge preamble: the caller authenticated for the tenant, and its provisioning trigger.
    fn begin<T>(&self, req: &Request<T>, tenant: &str) -> Result<Edge<ProvisioningTrigger>, ApiError> {
        self.state.begin::<ProvisioningArea, _>(req, tenant)
    }

    /// The order as it is now. A replayed answer is the order as it was first answered; a
    /// pending order may have moved on since (a final one never does), so it is read again.
    async fn current(&self, tenant: &str, answered: pb::Order) -> pb::Order {
        if answered.state() != pb::OrderState::Pending || answered.order_id.is_empty() {
            return answered;
        }
        match store::get_order(&self.state.db, tenant, &answered.order_id).await {
            Ok(Some(order)) => order_pb(&order),
            Ok(None) => answered,
            Err(e) => {
                // The answer is still true as of when it was given; GetOrder tells the rest.
                tracing::warn!(error = %e, tenant, order_id = %answered.order_id, "re-reading an order failed");
                answered
            }
        }
    }

    /// Every field of an order checked, the number type against the region's list (a cached
    /// read), before anything is claimed.
    async fn check_order(
        &self,
        trigger: &Provisioning,
        req: &pb::ProvisionNumbersRequest,
    ) -> Result<NumberOrder, ApiError> {
        let mut v = Violations::new();
        let order = check_provision(req, &mut v);
        // The number type is checked against the region's list (cached), once the rest is sound.
        if let Some(NumberOrder { region: Some(region), number_type: Some(number_type), .. }) = &order
            && v.is_empty()
        {
            let types =
                trigger.number_types(*region).await.map_err(|e| vendor_error(trigger.provider, Action::Read, e))?;
            if !types.types.iter().any(|t| &t.key == number_type) {
                let keys: Vec<&str> = types.types.iter().map(|t| t.key.as_str()).collect();
                v.add(
                    "number_type",
                    format!("`{number_type}` is not a number type of {region}; it offers: {}", keys.join(", ")),
                );
            }
        }
        v.into_result()?;
        Ok(order.expect("no violations, so an order"))
    }

    /// Places a checked order once per request_id: its submission row is the claim (a repeat
    /// finds the order, an overdue or unclear one is never sent again). `true`: a replay.
    async fn provision(
        &self,
        edge: &Edge<ProvisioningTrigger>,
        order: NumberOrder,
        req: &pb::ProvisionNumbersRequest,
    ) -> Result<(pb::Order, bool), ApiError> {
        let (tenant, trigger) = (edge.tenant(), &edge.trigger);
        let hash = Sha256::digest(req.encode_to_vec());
        let answer_within = trigger.vendor.answer_timeout() + ANSWER_MARGIN;
        let claimed = store::claim_submission(&self.state.db, tenant, &req.request_id, &hash, answer_within)
            .await
            .map_err(db_error)?;
        let id = match claimed {
            Submission::New(id) => id,
            Submission::Existing(order) => return Ok((order_pb(&order), true)),
            Submission::InFlight => {
                return Err(ApiError::new(
                    Code::Aborted,
                    "REQUEST_IN_PROGRESS",
                    "this order is being sent under this request_id right now; retry shortly to get its answer",
                )
                .with_retry_after(Duration::from_secs(1)));
            }
            Submission::Unknown { message } => {
                return Err(ApiError::failed_precondition(
                    "ORDER_OUTCOME_UNKNOWN",
                    format!(
                        "this request_id was sent to {} before and no clear answer came back ({message}); it may \
                         have placed the order, so it is not sent again. Check the vendor's portal; to order \
                         anyway, use a new request_id",
                        trigger.provider
                    ),
                ));
            }
            Submission::Mismatch => {
                return Err(ApiError::invalid_field(
                    "request_id",
                    "was already used for a different order; use a new id for a new order",
                )
                .with_metadata("rule", "IDEMPOTENCY_KEY_REUSED"));
            }
        };
        match trigger.vendor.provision(&order).await {
            Ok(answer) => {
                match store::record_answer(&self.state.db, id, tenant, &answer, Some(&edge.call.tenant)).await {
                    Ok((stored, reported)) => {
                        if reported {
                            self.state.outbox.wake();
                        }
                        Ok((order_pb(&stored), false))
                    }
                    Err(e) => {
                        // The vendor has the order; say which, so an operator can reconcile it.
                        tracing::error!(
                            %tenant, request_id = %req.request_id, order_id = %answer.order_id,
                            state = answer.state.as_str(), error = %e,
                            "the vendor took an order but storing it failed"
                        );
                        let reason = format!("the vendor answered order {} but storing it failed", answer.order_id);
                        if let Err(e) = store::mark_unknown(&self.state.db, id, &reason).await {
                            tracing::error!(error = %e, "marking the order unknown failed too");
                        }
                        Err(ApiError::internal("storing the vendor's order", &e)
                            .with_metadata("order_id", answer.order_id))
                    }
                }
            }
            Err(err) => {
                if let VendorFailure::OutcomeUnknown = err.failure {
                    tracing::warn!(
                        %tenant, request_id = %req.request_id, vendor_code = %err.fault.code, detail = %err.fault.message,
                        "an order's outcome is unknown; it will not be sent again under this request_id"
                    );
                }
                let kept = match err.failure {
                    VendorFailure::OutcomeUnknown => store::mark_unknown(&self.state.db, id, &err.fault.message).await,
                    // Refused or never delivered: nothing was ordered, the request may be fixed and retried.
                    _ => store::abandon(&self.state.db, id).await,
                };
                if let Err(e) = kept {
                    tracing::error!(error = %e, %tenant, "recording a failed submission failed");
                }
                Err(vendor_error(trigger.provider, Action::Order, err))
            }
        }
    }

    async fn watch(
        &self,
        call: TenantCall,
        order_id: String,
    ) -> Result<<Self as ProvisioningService>::WatchOrderStream, ApiError> {
        let tenant = call.tenant.id.clone();
        // Subscribed before the first read, so no change falls in between.
        let mut subscription = self
            .hub
            .subscribe(&tenant, &order_id)
            .await
            .map_err(|e| ApiError::unavailable("WATCH_UNAVAILABLE", e.to_string(), Duration::from_secs(1)))?;
        let first = store::get_order(&self.state.db, &tenant, &order_id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| order_not_found(&order_id))?;
        let (tx, rx) = mpsc::channel::<Result<pb::Order, Status>>(8);
        let db = self.state.db.clone();
        let shutdown = self.state.shutdown.clone();
        tokio::spawn(async move {
            let done = first.state.is_final();
            let mut last = first;
            if tx.send(Ok(order_pb(&last))).await.is_err() || done {
                return;
            }
            loop {
                let change = tokio::select! {
                    _ = shutdown.cancelled() => {
                        let err = ApiError::unavailable(
                            "SERVER_SHUTTING_DOWN",
                            "the server is shutting down; call WatchOrder again (on another replica)",
                            Duration::from_secs(1),
                        );
                        let _ = tx.send(Err(err.into())).await;
                        return;
                    }
                    _ = tx.closed() => return,
                    change = subscription.changed() => change,
                    // A change whose announcement was lost (a crash between its commit and its
                    // NOTIFY) is still seen, later.
                    _ = tokio::time::sleep(WATCH_RECHECK) => None,
                };
                // The announced change when it follows what this watcher sent (no database read
                // for each watcher of a burst of callbacks); else the order as stored.
                let order = match change.and_then(|c| c.apply(&last)) {
                    Some(order) => order,
                    None => match store::get_order(&db, &tenant, &order_id).await {
                        Ok(Some(o)) => o,
                        Ok(None) => {
                            let _ = tx.send(Err(order_not_found(&order_id).into())).await;
                            return;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(db_error(e).into())).await;
                            return;
                        }
                    },
                };
                if (order.state, order.history.len(), order.updated_at)
                    == (last.state, last.history.len(), last.updated_at)
                {
                    continue;
                }
                last = order;
                if tx.send(Ok(order_pb(&last))).await.is_err() || last.state.is_final() {
                    return;
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl ProvisioningService for ProvisioningGrpc {
    async fn provision_numbers(
        &self,
        req: Request<pb::ProvisionNumbersRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let edge = self.begin(&req, &req.get_ref().tenant)?;
        let req = req.into_inner();
        let checked = match check_request_id(&req.request_id) {
            Ok(()) => self.check_order(&edge.trigger, &req).await,
            Err(e) => Err(e),
        };
        let order = edge.call.checked(&self.state, edge.provider(), &req.request_id, checked).await?;
        let (this, run_edge, run_req) = (self.clone(), edge.clone(), req.clone());
        let order = edge
            .call
            .run_mutation(&self.state, edge.provider(), &req.request_id, move || async move {
                this.provision(&run_edge, order, &run_req).await
            })
            .await?;
        Ok(Response::new(self.current(edge.tenant(), order).await))
    }

    async fn update_customer(
        &self,
        req: Request<pb::UpdateCustomerRequest>,
    ) -> Result<Response<pb::UpdateCustomerResponse>, Status> {
        let edge = self.begin(&req, &req.get_ref().tenant)?;
        let req = req.into_inner();
        let update = edge.call.checked(&self.state, edge.provider(), &req.request_id, check_update(&req)).await?;
        let trigger = Arc::clone(&edge.trigger);
        let resp = edge
            .call
            .mutate(&self.state, edge.provider(), &req.request_id, &req, move || async move {
                let steps = trigger
                    .vendor
                    .update_customer(&update)
                    .await
                    .map_err(|e| vendor_error(trigger.provider, Action::Update, e))?;
                Ok(pb::UpdateCustomerResponse {
                    steps: steps
                        .into_iter()
                        .map(|s| pb::UpdateStep {
                            parameters: s.parameters.into_iter().map(str::to_owned).collect(),
                            ok: s.ok,
                            message: s.message,
                        })
                        .collect(),
                })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn get_region_number_types(
        &self,
        req: Request<pb::GetRegionNumberTypesRequest>,
    ) -> Result<Response<pb::GetRegionNumberTypesResponse>, Status> {
        let edge = self.begin(&req, &req.get_ref().tenant)?;
        let trigger = &edge.trigger;
        let Ok(Some(region)) = region_of(req.get_ref().region) else {
            return Err(ApiError::invalid_field("region", REGION_RULE).into());
        };
        let types = trigger.number_types(region).await.map_err(|e| vendor_error(trigger.provider, Action::Read, e))?;
        Ok(Response::new(pb::GetRegionNumberTypesResponse {
            region_code: types.region_code.clone(),
            number_types: types
                .types
                .iter()
                .map(|t| pb::NumberType { key: t.key.clone(), description: t.description.clone() })
                .collect(),
        }))
    }

    async fn get_order(&self, req: Request<pb::GetOrderRequest>) -> Result<Response<pb::Order>, Status> {
        let call = self.begin(&req, &req.get_ref().tenant)?.call;
        let order_id = &req.get_ref().order_id;
        check_order_id(order_id)?;
        let order = store::get_order(&self.state.db, &call.tenant.id, order_id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| order_not_found(order_id))?;
        Ok(Response::new(order_pb(&order)))
    }

    async fn list_orders(
        &self,
        req: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let call = self.begin(&req, &req.get_ref().tenant)?.call;
        let req = req.into_inner();
        let mut v = Violations::new();
        let state = match pb::OrderState::try_from(req.state) {
            Ok(pb::OrderState::Unspecified) => None,
            Ok(pb::OrderState::Pending) => Some(OrderState::Pending),
            Ok(pb::OrderState::Completed) => Some(OrderState::Completed),
            Ok(pb::OrderState::Failed) => Some(OrderState::Failed),
            Err(_) => {
                v.add("state", "must be ORDER_STATE_PENDING, ORDER_STATE_COMPLETED, ORDER_STATE_FAILED or unset");
                None
            }
        };
        let size = page::page_size(req.page_size, 50, 1000);
        if let Err(e) = &size {
            v.add(
                "page_size",
                e.violations.first().map_or("must not be negative".to_owned(), |f| f.description.clone()),
            );
        }
        v.into_result()?;
        let size = size?;
        let filter = format!("tenant={};state={}", call.tenant.id, state.map_or("any", OrderState::as_str));
        let before = match page::decode(&req.page_token, &filter)? {
            None => None,
            Some(after) => Some(after.parse::<i64>().map_err(|_| {
                ApiError::invalid_field("page_token", "not a token from a previous answer to this same query")
            })?),
        };
        let mut orders =
            store::list_orders(&self.state.db, &call.tenant.id, state, before, size + 1).await.map_err(db_error)?;
        let more = orders.len() as i64 > size;
        orders.truncate(size as usize);
        let next_page_token = match orders.last() {
            Some(last) if more => page::encode(&last.seq.to_string(), &filter),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListOrdersResponse { orders: orders.iter().map(order_pb).collect(), next_page_token }))
    }

    type WatchOrderStream = Pin<Box<dyn Stream<Item = Result<pb::Order, Status>> + Send + 'static>>;

    async fn watch_order(
        &self,
        req: Request<pb::WatchOrderRequest>,
    ) -> Result<Response<Self::WatchOrderStream>, Status> {
        let call = self.begin(&req, &req.get_ref().tenant)?.call;
        let order_id = req.into_inner().order_id;
        check_order_id(&order_id)?;
        Ok(Response::new(self.watch(call, order_id).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::provision_numbers_request::Who;

    fn good_order() -> pb::ProvisionNumbersRequest {
        pb::ProvisionNumbersRequest {
            tenant: "demo".into(),
            who: Some(Who::NewCustomer(pb::NumberCustomer {
                business_name: "Acme Plumbing".into(),
                email: "ops@acme.example".into(),
                ..Default::default()
            })),
            features: vec![pb::Feature::CallRecording as i32],
            region: pb::Region::Japan as i32,
            number_type: "0120".into(),
            count: 2,
            order_summary_email: String::new(),
            terms_accepted: true,
            request_id: "r-1".into(),
        }
    }

    fn violations(req: &pb::ProvisionNumbersRequest) -> Vec<String> {
        let mut v = Violations::new();
        let order = check_provision(req, &mut v);
        match v.into_result() {
            Ok(()) => {
                assert!(order.is_some());
                Vec::new()
            }
            Err(e) => e.fields().into_iter().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn a_complete_order_is_valid() {
        assert!(violations(&good_order()).is_empty());
    }

    #[test]
    fn every_bad_field_of_an_order_is_reported_at_once() {
        let mut req = good_order();
        req.who = Some(Who::NewCustomer(pb::NumberCustomer { email: "nope".into(), ..Default::default() }));
        req.features = vec![1, 1, 9];
        req.region = 42;
        req.number_type.clear();
        req.count = 11;
        req.order_summary_email = "a@b".into();
        req.terms_accepted = false;
        req.request_id.clear();
        assert_eq!(
            violations(&req),
            [
                "request_id",
                "new_customer.business_name",
                "new_customer.email",
                "features[1]",
                "features[2]",
                "region",
                "number_type",
                "count",
                "order_summary_email",
                "terms_accepted"
            ]
        );
    }

    #[test]
    fn an_existing_company_takes_no_region_type_or_features() {
        let mut req = good_order();
        req.who = Some(Who::CompanyId("12x".into()));
        assert_eq!(violations(&req), ["company_id", "features", "region", "number_type"]);
        req.who = Some(Who::CompanyId("1001".into()));
        req.features.clear();
        req.region = 0;
        req.number_type.clear();
        assert!(violations(&req).is_empty());
    }

    #[test]
    fn updates_check_every_rule() {
        let req = pb::UpdateCustomerRequest {
            company_id: "1001".into(),
            business_name: Some(" ".into()),
            email: Some("x".into()),
            one_three_hundred_number: Some("13".into()),
            transfer_time: Some(1000),
            sms_message: Some("x".repeat(161)),
            transfer_type: 9,
            call_track: 9,
            ..Default::default()
        };
        let err = check_update(&req).unwrap_err();
        assert_eq!(
            err.fields(),
            [
                "business_name",
                "email",
                "one_three_hundred_number",
                "transfer_type",
                "transfer_time",
                "sms_message",
                "call_track"
            ]
        );
        let nothing = check_update(&pb::UpdateCustomerRequest { company_id: "1001".into(), ..Default::default() });
        assert_eq!(nothing.unwrap_err().reason, "NOTHING_TO_UPDATE");
        let ok = pb::UpdateCustomerRequest {
            company_id: "1001".into(),
            transfer_time: Some(999),
            sms_message: Some("é".repeat(160)),
            ..Default::default()
        };
        assert_eq!(check_update(&ok).unwrap().changed(), ["transfer_time", "sms_message"]);
    }

    #[test]
    fn emails_and_phone_numbers() {
        assert!(valid_email("ops@acme.example"));
        for bad in ["", "ops", "@acme.example", "ops@acme", "ops@.example", "o ps@acme.example", "a@b@c.d"] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_phone("+61 2 9999 0000"));
        assert!(valid_phone("1300123456"));
        assert!(!valid_phone("12345"));
        assert!(!valid_phone("02-9999-0000"));
    }
}
