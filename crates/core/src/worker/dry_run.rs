//! `[safety] dry_run`: a CRM wrapper that lets every read through and turns every
//! write into an audited "would …" record, so an operator can see exactly what a
//! real run would do without a single mutating call reaching the CRM.

use std::sync::Arc;

use async_trait::async_trait;

use crate::crm::{
    Crm, CrmError, CrmUser, NewTask, Record, Resource,
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
    });
}

#[async_trait]
impl Crm for DryRunCrm {
    async fn find_user_by_email(&self, email: &str) -> Result<Option<CrmUser>, CrmError> {
        self.inner.find_user_by_email(email).await
    }
    async fn get_user(&self, id: i64) -> Result<Option<CrmUser>, CrmError> {
        self.inner.get_user(id).await
    }
    async fn list_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        self.inner.list_users().await
    }
    async fn list_owned(&self, resource: Resource, owner_id: i64) -> Result<Vec<Record>, CrmError> {
        self.inner.list_owned(resource, owner_id).await
    }
    async fn reassign(
        &self,
        resource: Resource,
        record_id: i64,
        new_owner: i64,
    ) -> Result<(), CrmError> {
        would(
            "PUT",
            format!("/v2/{resource}/{record_id} owner_id={new_owner}"),
        );
        Ok(())
    }
    async fn create_task(&self, task: &NewTask) -> Result<i64, CrmError> {
        would("POST", format!("/v2/tasks owner_id={}", task.owner_id));
        Ok(0)
    }
    async fn find_task(&self, owner_id: i64, marker: &str) -> Result<Option<i64>, CrmError> {
        self.inner.find_task(owner_id, marker).await
    }
}
