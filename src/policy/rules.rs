//! Parsing and validating the policy file; `Policy::decide`.
//! (Being written: see the policy work item.)

use std::path::Path;

use super::decide::{Decision, Facts};

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    _private: (),
}

/// A policy file that cannot be used; `Display` is `file:line:col: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}:{line}:{col}: {message}")]
pub struct PolicyError {
    /// File name (or `<inline>`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: path.display().to_string(),
            line: 0,
            col: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Validates policy text; `origin` names it in errors.
    pub fn parse(_text: &str, _origin: &str) -> Result<Self, PolicyError> {
        todo!("policy parsing")
    }

    /// Decides the `delete_after` follow-up; cannot fail.
    pub fn decide_follow_up_delete(&self, _facts: &Facts<'_>) -> Decision {
        todo!("policy decide_follow_up_delete")
    }

    /// Short hash of the policy text.
    pub fn version(&self) -> &str {
        todo!("policy version")
    }

    /// Decides; cannot fail.
    pub fn decide(&self, _facts: &Facts<'_>) -> Decision {
        todo!("policy decide")
    }
}
