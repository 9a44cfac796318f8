//! [`CurrentPolicy`]: the policy a worker decides with, swapped whole on reload.
//! A leaf: it needs nothing else of the worker, and [`runner`](super::runner)
//! and the app both reach it.

use std::sync::{Arc, RwLock};

use crate::policy::Policy;

/// The policy in force; replaced atomically on reload (SIGHUP).
#[derive(Debug)]
pub struct CurrentPolicy(RwLock<Arc<Policy>>);

impl CurrentPolicy {
    /// Wraps a validated policy.
    pub fn new(policy: Policy) -> Self {
        Self(RwLock::new(Arc::new(policy)))
    }
    /// The policy to decide with now.
    pub fn get(&self) -> Arc<Policy> {
        match self.0.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
    /// Swaps in a new policy.
    pub fn replace(&self, policy: Policy) {
        match self.0.write() {
            Ok(mut p) => *p = Arc::new(policy),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(policy),
        }
    }
}
