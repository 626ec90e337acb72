//! What a tenant holds for the provisioning area once its trigger is built.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use secrecy::SecretString;

use super::provider::{NumberProvider, ProviderError, Region, RegionNumberTypes};

/// How long a region's number types are cached per tenant.
pub const NUMBER_TYPES_TTL: Duration = Duration::from_secs(600);

/// A tenant's provisioning trigger, built: its provider's client, the secret the provider's
/// callbacks must present, and its cache of number types.
pub struct ProvisioningTrigger {
    pub vendor: Arc<dyn NumberProvider>,
    callback_secret: SecretString,
    number_types: Mutex<HashMap<Region, (Instant, Arc<RegionNumberTypes>)>>,
    ttl: Duration,
}

impl std::fmt::Debug for ProvisioningTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisioningTrigger").finish_non_exhaustive()
    }
}

impl ProvisioningTrigger {
    pub fn new(vendor: Arc<dyn NumberProvider>, callback_secret: SecretString) -> Self {
        Self { vendor, callback_secret, number_types: Mutex::default(), ttl: NUMBER_TYPES_TTL }
    }

    /// The secret the provider's callbacks carry in their URL.
    pub fn callback_secret(&self) -> &SecretString {
        &self.callback_secret
    }

    /// A region's number types, from the cache while fresh, else from the provider.
    pub async fn number_types(&self, region: Region) -> Result<Arc<RegionNumberTypes>, ProviderError> {
        if let Some((at, types)) = self.cache().get(&region)
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(types));
        }
        // Two concurrent misses both ask the vendor; that is rare and harmless (a read).
        let types = Arc::new(self.vendor.number_types(region).await?);
        self.cache().insert(region, (Instant::now(), Arc::clone(&types)));
        Ok(types)
    }

    /// The same, with another cache lifetime.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Region, (Instant, Arc<RegionNumberTypes>)>> {
        self.number_types.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::provisioning::provider::*;

    /// A provider that only answers number types, counting the calls.
    #[derive(Default)]
    struct Counting(AtomicU32);

    #[tonic::async_trait]
    impl NumberProvider for Counting {
        async fn provision(&self, _: &NumberOrder) -> Result<VendorOrder, ProviderError> {
            unreachable!("not used")
        }
        async fn update_customer(&self, _: &CustomerUpdate) -> Result<Vec<UpdateStep>, ProviderError> {
            unreachable!("not used")
        }
        async fn number_types(&self, region: Region) -> Result<RegionNumberTypes, ProviderError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(RegionNumberTypes { region_code: region.name().into(), types: Vec::new() })
        }
        fn answer_timeout(&self) -> Duration {
            Duration::from_secs(1)
        }
    }

    #[tokio::test]
    async fn number_types_are_cached_per_region_until_the_ttl_runs_out() {
        let provider = Arc::new(Counting::default());
        let trigger =
            ProvisioningTrigger::new(provider.clone(), SecretString::from("s")).with_ttl(Duration::from_millis(100));
        trigger.number_types(Region::Japan).await.unwrap();
        trigger.number_types(Region::Japan).await.unwrap();
        assert_eq!(provider.0.load(Ordering::SeqCst), 1);
        trigger.number_types(Region::China).await.unwrap();
        assert_eq!(provider.0.load(Ordering::SeqCst), 2, "each region has its own entry");
        tokio::time::sleep(Duration::from_millis(150)).await;
        trigger.number_types(Region::Japan).await.unwrap();
        assert_eq!(provider.0.load(Ordering::SeqCst), 3, "a stale entry is fetched again");
    }
}
