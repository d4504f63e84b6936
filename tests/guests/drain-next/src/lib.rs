//! `drain` under the version 0.2.0: the same miner and state format, another version, so a test
//! can move learned templates to a next version and see the grouping unchanged.
sg_dedup_core::learning_dedup_component!("0.2.0");
