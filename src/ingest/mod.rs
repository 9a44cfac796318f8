//! The receiving end: verify a webhook's signature on the raw bytes, map the
//! payload to canonical events, and hand them to the store in one transaction.
//!
//! Architecture invariant: nothing here calls the CRM or runs policy. A 2xx is
//! only sent after the store committed the event and its job.

pub mod mapping;
pub mod routes;
pub mod schemes;

use std::{collections::HashMap, sync::Arc};

use crate::config::{Config, ConfigError, SourceConfig};

use schemes::SignatureScheme;

/// One configured HR source, ready to verify requests.
#[derive(Debug)]
pub struct Source {
    /// Its configuration.
    pub config: SourceConfig,
    /// Its signature scheme, holding the secrets.
    pub scheme: Box<dyn SignatureScheme>,
}

/// All configured sources by route name.
#[derive(Debug, Default)]
pub struct Sources {
    by_name: HashMap<String, Arc<Source>>,
}

impl Sources {
    /// Builds every source, reading its secrets; the first problem stops start-up.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let mut by_name = HashMap::new();
        for (i, source) in config.sources.iter().enumerate() {
            let secrets = source.secrets(i)?;
            let scheme =
                schemes::build(source, secrets).map_err(|problem| ConfigError::Secret {
                    key: format!("sources[{i}] ({})", source.name),
                    problem,
                })?;
            by_name.insert(
                source.name.clone(),
                Arc::new(Source {
                    config: source.clone(),
                    scheme,
                }),
            );
        }
        Ok(Self { by_name })
    }

    /// The source for a route segment.
    pub fn get(&self, name: &str) -> Option<Arc<Source>> {
        self.by_name.get(name).cloned()
    }
}
