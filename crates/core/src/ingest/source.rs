//! The configured webhook sources: each `[sources.<name>]` turned once, at start-up,
//! into a verifier ([`super::schemes`]) and a mapping ([`super::mapping`]). The
//! receiver ([`super::routes`]) looks a request's source up here by name.

use std::{collections::HashMap, sync::Arc};

use super::mapping::{Mapping, MappingConfigError};
use super::schemes::{BuildError, SignatureScheme, Spec, SpecError};
use crate::config::{Config, ConfigError, Secret, SourceConfig};

/// Why one source cannot be set up. The message names the config key (or, for
/// secrets, what is wrong with them without printing them).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// `scheme`, `[sources.hmac]` or `token_header`.
    #[error(transparent)]
    Scheme(#[from] SpecError),
    /// `[sources.map]`, `values`, `defaults`, `each`, `event_id`, `format`, `ping`.
    #[error(transparent)]
    Mapping(#[from] MappingConfigError),
    /// The secrets given to the scheme.
    #[error(transparent)]
    Secrets(#[from] BuildError),
}

/// One configured HR source, ready to verify and map requests.
#[derive(Debug)]
pub struct Source {
    /// Its `[[sources]]` entry as configured (the route name is `config.name`).
    pub config: SourceConfig,
    /// Its resolved scheme (no secrets).
    pub spec: Spec,
    /// Its signature scheme, holding the secrets.
    pub scheme: Box<dyn SignatureScheme>,
    /// Its compiled payload mapping.
    pub mapping: Mapping,
}

impl Source {
    /// Compiles a source with the given secrets; the error names the key. Called by
    /// [`Sources::from_config`] at start-up, and directly by tests and the demo.
    pub fn build(config: SourceConfig, secrets: Vec<Secret>) -> Result<Self, SourceError> {
        let spec = Spec::resolve(&config)?;
        let mapping = Mapping::from_config(&config)?;
        let scheme = spec.clone().build(secrets)?;
        Ok(Self {
            config,
            spec,
            scheme,
            mapping,
        })
    }
}

/// All configured sources by route name.
#[derive(Debug, Default)]
pub struct Sources {
    by_name: HashMap<String, Arc<Source>>,
}

impl Sources {
    /// Builds every source, reading its secrets; the first problem stops start-up.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let mut sources = Vec::with_capacity(config.sources.len());
        for (i, source) in config.sources.iter().enumerate() {
            let key = format!("sources[{i}] ({})", source.name);
            // Shape errors first: they need no secret and say what to fix.
            let shape = Spec::resolve(source)
                .map(drop)
                .map_err(SourceError::from)
                .and_then(|()| {
                    Mapping::from_config(source)
                        .map(drop)
                        .map_err(SourceError::from)
                });
            shape.map_err(|e| ConfigError::Invalid(format!("{key}: {e}")))?;
            let secrets = source.secrets(i)?;
            let built =
                Source::build(source.clone(), secrets).map_err(|e| ConfigError::Secret {
                    key,
                    problem: e.to_string(),
                })?;
            sources.push(built);
        }
        Ok(Self::from_sources(sources))
    }

    /// Sources built elsewhere (tests, the demo).
    pub fn from_sources(sources: Vec<Source>) -> Self {
        Self {
            by_name: sources
                .into_iter()
                .map(|s| (s.config.name.clone(), Arc::new(s)))
                .collect(),
        }
    }

    /// The source for a route segment.
    pub fn get(&self, name: &str) -> Option<Arc<Source>> {
        self.by_name.get(name).cloned()
    }
}
