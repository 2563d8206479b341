//! Shared state of the HTTP handlers.

use std::sync::Arc;

use super::refused::RefusedRequests;
use crate::provisioning::Provisioner;
use crate::provisioning::rollout::Switch;
use crate::token::TokenVerifier;

/// Everything a handler needs.
#[derive(Clone, Debug)]
pub struct AppState {
    pub prov: Provisioner,
    pub auth: Arc<TokenVerifier>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Base URL for `meta.location`, e.g. `https://phab.example.com/scim/v2`.
    pub base_url: Arc<str>,
    /// Requests refused before authentication, until the next sync-log write.
    pub refused: Arc<RefusedRequests>,
    /// In staged mode (`mode = "staged"`): which provisioner serves SCIM requests.
    pub rollout: Option<Arc<Switch>>,
}

impl AppState {
    /// The provisioner of SCIM requests: `prov`, or in staged mode the one the rollout's
    /// phase names.
    pub async fn scim(&self) -> &Provisioner {
        match &self.rollout {
            Some(switch) => switch.current().await,
            None => &self.prov,
        }
    }
}
