//! Process metrics in the Prometheus text format (`GET /metrics` on the HTTP listener).
//!
//! Labelled counters live in one mutex-guarded map, updated once per call. (The operations issue
//! moves these to a Prometheus crate with histograms; the series stay the same.)

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Counters shared by the whole process. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Counters>>,
}

#[derive(Debug, Default)]
struct Counters {
    /// method -> code -> (calls, total seconds). Nested, so that counting a call looks its keys up
    /// by `&str` and allocates only the first time a (method, code) pair is seen.
    grpc: BTreeMap<String, BTreeMap<String, (u64, f64)>>,
    /// (provider, operation) -> outcome -> (vendor HTTP calls, total seconds). Every key is a
    /// provider's fixed name or an HTTP status, so the series are bounded; nested, so that
    /// counting a call allocates only the first time an outcome is seen.
    vendor: BTreeMap<VendorKey, BTreeMap<String, (u64, f64)>>,
}

/// A vendor call's provider and operation (both fixed names).
type VendorKey = (&'static str, &'static str);

impl Counters {
    /// ((provider, operation), outcome, counts), sorted.
    fn vendor_rows(&self) -> impl Iterator<Item = (&VendorKey, &str, &(u64, f64))> {
        self.vendor.iter().flat_map(|(key, outcomes)| outcomes.iter().map(move |(o, n)| (key, o.as_str(), n)))
    }

    /// (method, code, counts), sorted by method then code.
    fn grpc_rows(&self) -> impl Iterator<Item = (&str, &str, &(u64, f64))> {
        self.grpc
            .iter()
            .flat_map(|(method, codes)| codes.iter().map(move |(code, n)| (method.as_str(), code.as_str(), n)))
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// One finished gRPC call.
    pub fn grpc_call(&self, method: &str, code: &str, elapsed: Duration) {
        let mut c = self.lock();
        let codes = match c.grpc.get_mut(method) {
            Some(codes) => codes,
            None => c.grpc.entry(method.to_owned()).or_default(),
        };
        let entry = match codes.get_mut(code) {
            Some(entry) => entry,
            None => codes.entry(code.to_owned()).or_default(),
        };
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    /// One vendor HTTP call (see `ops::vendor`); `outcome` is the HTTP status or `timeout` / `error`.
    pub fn vendor_call(&self, provider: &'static str, operation: &'static str, outcome: &str, elapsed: Duration) {
        let mut c = self.lock();
        let outcomes = c.vendor.entry((provider, operation)).or_default();
        let entry = match outcomes.get_mut(outcome) {
            Some(entry) => entry,
            None => outcomes.entry(outcome.to_owned()).or_default(),
        };
        entry.0 += 1;
        entry.1 += elapsed.as_secs_f64();
    }

    /// Calls of `method` that ended with `code` so far.
    pub fn grpc_count(&self, method: &str, code: &str) -> u64 {
        self.lock().grpc.get(method).and_then(|codes| codes.get(code)).map_or(0, |e| e.0)
    }

    /// The text exposition; `gauges` are process-wide values read at scrape time.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let c = self.lock();
        let mut out = String::new();
        out.push_str("# HELP patchbay_grpc_requests_total gRPC calls by method and status code.\n");
        out.push_str("# TYPE patchbay_grpc_requests_total counter\n");
        for (method, code, (n, _)) in c.grpc_rows() {
            let _ = writeln!(out, "patchbay_grpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}");
        }
        out.push_str("# HELP patchbay_grpc_request_seconds_total Time spent in gRPC calls by method and code.\n");
        out.push_str("# TYPE patchbay_grpc_request_seconds_total counter\n");
        for (method, code, (_, secs)) in c.grpc_rows() {
            let _ = writeln!(out, "patchbay_grpc_request_seconds_total{{method=\"{method}\",code=\"{code}\"}} {secs}");
        }
        out.push_str("# HELP patchbay_vendor_requests_total Vendor HTTP calls by provider, operation and outcome.\n");
        out.push_str("# TYPE patchbay_vendor_requests_total counter\n");
        for ((provider, operation), outcome, (n, _)) in c.vendor_rows() {
            let _ = writeln!(
                out,
                "patchbay_vendor_requests_total{{provider=\"{provider}\",operation=\"{operation}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP patchbay_vendor_request_seconds_total Time spent in vendor HTTP calls by provider, operation and outcome.\n",
        );
        out.push_str("# TYPE patchbay_vendor_request_seconds_total counter\n");
        for ((provider, operation), outcome, (_, secs)) in c.vendor_rows() {
            let _ = writeln!(
                out,
                "patchbay_vendor_request_seconds_total{{provider=\"{provider}\",operation=\"{operation}\",outcome=\"{outcome}\"}} {secs}"
            );
        }
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_counters_and_gauges() {
        let m = Metrics::new();
        m.grpc_call("patchbay.v1.RegistryService/ListTenants", "OK", Duration::from_millis(5));
        m.grpc_call("patchbay.v1.RegistryService/ListTenants", "OK", Duration::from_millis(5));
        m.vendor_call("alianza", "GET account", "200", Duration::from_millis(3));
        let text = m.render(&[("patchbay_tenants", "Tenants served.", 3.0)]);
        assert!(text.contains(
            "patchbay_grpc_requests_total{method=\"patchbay.v1.RegistryService/ListTenants\",code=\"OK\"} 2"
        ));
        assert!(text.contains(
            "patchbay_vendor_requests_total{provider=\"alianza\",operation=\"GET account\",outcome=\"200\"} 1"
        ));
        assert!(text.contains("patchbay_tenants 3"));
        assert_eq!(m.grpc_count("patchbay.v1.RegistryService/ListTenants", "OK"), 2);
    }

    #[test]
    fn counters_are_listed_by_method_then_code() {
        let m = Metrics::new();
        for (method, code) in [("b/X", "OK"), ("a/Y", "UNAVAILABLE"), ("a/Y", "INTERNAL"), ("b/X", "OK")] {
            m.grpc_call(method, code, Duration::from_millis(1));
        }
        let text = m.render(&[]);
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("patchbay_grpc_requests_total{")).collect();
        assert_eq!(
            rows,
            [
                "patchbay_grpc_requests_total{method=\"a/Y\",code=\"INTERNAL\"} 1",
                "patchbay_grpc_requests_total{method=\"a/Y\",code=\"UNAVAILABLE\"} 1",
                "patchbay_grpc_requests_total{method=\"b/X\",code=\"OK\"} 2",
            ]
        );
        assert_eq!(m.grpc_count("b/X", "OK"), 2);
        assert_eq!(m.grpc_count("b/X", "INTERNAL"), 0);
    }
}
