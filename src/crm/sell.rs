//! Zendesk Sell API v2 client (being written).
