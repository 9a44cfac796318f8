//! A Sell-compatible sandbox server (being written).
