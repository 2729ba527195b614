//! The audit log: who changed what, through which route, and what Meta said. The HTTP
//! middleware (`routes::audit`) builds one entry per audited call; this keeps them.
//! Tokens never reach it: only their `jti`.

use std::sync::Arc;

use crate::storage::{AuditEntry, AuditFilter, AuditPage, AuditStore, Result};

/// Counted when a row could not be written (the call itself already happened).
const AUDIT_WRITE_FAILURES: &str = "wagw_audit_write_failures_total";

#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
}

impl AuditLog {
    pub fn new(store: Arc<dyn AuditStore>) -> Self {
        AuditLog { store }
    }

    /// Writes the entry; a failure is counted and logged, never passed to the caller, whose
    /// call already happened.
    pub async fn record(&self, entry: &AuditEntry) {
        if let Err(e) = self.store.insert(entry).await {
            metrics::counter!(AUDIT_WRITE_FAILURES).increment(1);
            tracing::error!(error = %e, route = entry.route, "cannot write the audit record");
        }
    }

    /// Newest first, `limit` at most.
    pub async fn list(&self, filter: &AuditFilter, limit: u32) -> Result<AuditPage> {
        self.store.list(filter, limit).await
    }
}
