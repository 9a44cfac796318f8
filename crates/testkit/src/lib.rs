//! What offboard's tests share.
