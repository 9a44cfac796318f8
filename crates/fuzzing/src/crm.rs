//! The CRM target: one HTTP answer read by every client's decoders.

use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use offboard_core::crm::{hubspot, pipedrive, salesforce, sell};

use crate::input::{first_line, headers, sections};

/// "Now" for `Retry-After` dates and reset times.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A CRM's answer: the status on the first line (200 when it is not a number),
/// header lines, a line `%%`, and the body. Each client (Sell, Pipedrive, HubSpot,
/// Salesforce) reads it as every answer it decodes and through its error and
/// rate-limit rules (`read_every_answer`); none may panic.
pub fn crm_responses(data: &[u8]) {
    let [head, body] = sections(data);
    let (status, lines) = first_line(head);
    let status = std::str::from_utf8(status)
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(200);
    let headers = headers(lines);
    let now = now();
    type Reader = fn(u16, &HeaderMap, &[u8], SystemTime) -> usize;
    let readers: [Reader; 4] = [
        sell::read_every_answer,
        pipedrive::read_every_answer,
        hubspot::read_every_answer,
        salesforce::read_every_answer,
    ];
    for read in readers {
        let _ = read(status, &headers, body, now);
    }
}

/// How many answer shapes each client decoded `data`'s body as (Sell, Pipedrive,
/// HubSpot, Salesforce), for the corpus test: a corpus of nothing but junk would
/// test only the error paths.
pub fn decoded_shapes(data: &[u8]) -> [usize; 4] {
    let [head, body] = sections(data);
    let (_, lines) = first_line(head);
    let headers = headers(lines);
    let now = now();
    [
        sell::read_every_answer(200, &headers, body, now),
        pipedrive::read_every_answer(200, &headers, body, now),
        hubspot::read_every_answer(200, &headers, body, now),
        salesforce::read_every_answer(200, &headers, body, now),
    ]
}
