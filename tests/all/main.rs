//! End-to-end tests of `sg-host`, linked into one binary with a module per topic.

mod chaos;
mod containment;
mod contracts;
mod dedup;
mod features_compat;
mod features_corrected;
mod findings;
mod hostile_input;
mod iforest;
mod kafka;
mod kafka_security;
mod log_sets;
mod logs;
mod operations;
mod pipeline;
mod portability;
mod properties;
mod serve;
mod signing;
mod support;
mod swap;
mod templates;
mod versions;
