//! `[safety] dry_run`: a CRM wrapper that lets every read through and turns every
//! write into an audited "would …" record, so an operator can see exactly what a
//! real run would do without a single mutating call reaching the CRM.

use std::sync::Arc;

use async_trait::async_trait;

use crate::crm::{
    Capabilities, Crm, CrmError, CrmId, CrmUser, NewTask, Record, Resource, SeatChange,
    WriteOutcome,
    calls::{CallRecord, report},
};

/// Reads pass through; writes are reported, not sent.
pub struct DryRunCrm {
    inner: Arc<dyn Crm>,
}

impl DryRunCrm {
    /// Wraps a real client.
    pub fn new(inner: Arc<dyn Crm>) -> Self {
        Self { inner }
    }
}

fn would(method: &str, path: String) {
    report(CallRecord {
        method: format!("would {method}"),
        path,
        status: None,
        duration_ms: 0,
        error: Some("dry run: not sent".into()),
        lane: None,
        waited_ms: None,
    });
}

#[async_trait]
impl Crm for DryRunCrm {
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    async fn token_user(&self) -> Result<Option<CrmId>, CrmError> {
        self.inner.token_user().await
    }
    async fn find_user_by_email(&self, email: &str) -> Result<Option<CrmUser>, CrmError> {
        self.inner.find_user_by_email(email).await
    }
    async fn get_user(&self, id: &CrmId) -> Result<Option<CrmUser>, CrmError> {
        self.inner.get_user(id).await
    }
    async fn list_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        self.inner.list_users().await
    }
    async fn list_owned(&self, resource: Resource, owner: &CrmId) -> Result<Vec<Record>, CrmError> {
        self.inner.list_owned(resource, owner).await
    }
    async fn reassign(
        &self,
        resource: Resource,
        ids: &[CrmId],
        new_owner: &CrmId,
    ) -> Result<Vec<WriteOutcome>, CrmError> {
        let verb = self.inner.capabilities().write_verb;
        for id in ids {
            would(verb, format!("/{resource}/{id} owner_id={new_owner}"));
        }
        Ok(ids
            .iter()
            .map(|id| WriteOutcome {
                id: id.clone(),
                result: Ok(()),
            })
            .collect())
    }
    async fn change_seat(&self, user: &CrmId, change: SeatChange) -> Result<(), CrmError> {
        would("PUT", format!("/users/{user} {}", change.as_str()));
        Ok(())
    }
    async fn create_task(&self, task: &NewTask) -> Result<CrmId, CrmError> {
        would("POST", format!("/tasks owner_id={}", task.owner_id));
        Ok(CrmId::from(0))
    }
    async fn find_task(&self, owner: &CrmId, marker: &str) -> Result<Option<CrmId>, CrmError> {
        self.inner.find_task(owner, marker).await
    }
}
