//! What the CRM clients' wiremock suites share: settings that retry fast and
//! pace only where a test asks, and a JSON 200.

use std::time::Duration;

use offboard_core::crm::ClientSettings;
use serde_json::Value;
use wiremock::ResponseTemplate;

/// Fast retries so failure tests don't sleep for seconds; a generous rate so only
/// the pacing tests are paced.
pub fn fast() -> ClientSettings {
    ClientSettings {
        requests_per_second: 1000,
        max_in_flight: 8,
        timeout: Duration::from_secs(5),
        max_retries: 3,
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..ClientSettings::default()
    }
}

/// A 200 with `body` as JSON.
pub fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}
