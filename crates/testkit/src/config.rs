//! The files one `offboard serve` process reads, in a temp dir that lives as
//! long as the [`ServiceDir`]: the config, and next to it the webhook secret,
//! the admin token, the Sell token and the policy, each in its own file so no
//! secret travels through the environment of the test process.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The config's settings a test chooses; the rest are the service's defaults.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `[server] listen` is `127.0.0.1:PORT`.
    pub port: u16,
    /// `[store] url`; `None`: a SQLite file `offboard.db` in the dir.
    pub store_url: Option<String>,
    /// `[crm] base_url`; a receiver never calls it, so any URL will do there.
    pub crm_base_url: String,
    /// The `hr` source's Standard Webhooks secret (`whsec_…`).
    pub webhook_secret: String,
    /// The admin API's bearer token.
    pub admin_token: String,
    /// The Sell token the service presents.
    pub sell_token: String,
    /// The policy file's text.
    pub policy: String,
    /// More lines of `[store]`, e.g. `sqlite_group_commit = false`.
    pub store_extra: String,
    /// More lines of `[crm]`, e.g. `requests_per_second = 100`.
    pub crm_extra: String,
    /// More tables after the rest, e.g. a `[worker]` table.
    pub tail: String,
}

/// A temp dir holding a [`ServeConfig`] written out; removed when dropped.
#[derive(Debug)]
pub struct ServiceDir {
    dir: TempDir,
    /// The config file's path, for `serve --config`.
    pub config: PathBuf,
}

impl ServeConfig {
    /// A receiver's config on `port`, signing with `webhook_secret`: a SQLite store
    /// in the dir, a CRM URL on a closed port (a receiver never calls it), and a
    /// policy that deactivates everyone. Change fields with `..` for more.
    pub fn receiver(port: u16, webhook_secret: &str, admin_token: &str) -> ServeConfig {
        ServeConfig {
            port,
            store_url: None,
            crm_base_url: "http://127.0.0.1:9".into(),
            webhook_secret: webhook_secret.into(),
            admin_token: admin_token.into(),
            sell_token: "receiver-never-calls-the-crm".into(),
            policy: "version = 1\n[defaults]\nfallback_owner = \"ops@example.com\"\n[[rules]]\nname = \"all\"\naction = \"deactivate\"\n".into(),
            store_extra: String::new(),
            crm_extra: String::new(),
            tail: String::new(),
        }
    }

    /// Writes the config and its secret files into a new temp dir.
    pub fn write(&self) -> ServiceDir {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let p = dir.path();
        let put = |name: &str, text: &str| {
            std::fs::write(p.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"))
        };
        put("webhook-secret", &self.webhook_secret);
        put("admin-token", &self.admin_token);
        put("sell-token", &self.sell_token);
        put("policy.toml", &self.policy);
        let d = p.display();
        let store = self
            .store_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{d}/offboard.db"));
        // Empty `*_env` names switch the environment off as a secret source, so
        // a developer's own exported variables cannot leak into a test.
        let config = format!(
            r#"[server]
listen = "127.0.0.1:{port}"
[store]
url = "{store}"
{store_extra}
[crm]
base_url = "{crm}"
token_env = ""
token_file = "{d}/sell-token"
{crm_extra}
[[sources]]
name = "hr"
scheme = "standard_webhooks"
secrets_env = ""
secrets_file = "{d}/webhook-secret"
[policy]
file = "{d}/policy.toml"
[admin]
token_env = ""
token_file = "{d}/admin-token"
{tail}
"#,
            port = self.port,
            crm = self.crm_base_url,
            store_extra = self.store_extra,
            crm_extra = self.crm_extra,
            tail = self.tail,
        );
        put("offboard.toml", &config);
        ServiceDir {
            config: p.join("offboard.toml"),
            dir,
        }
    }
}

impl ServiceDir {
    /// The dir itself, for the test's own files next to the config.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of the SQLite store a config with no `store_url` uses.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}/offboard.db", self.dir.path().display())
    }
}
