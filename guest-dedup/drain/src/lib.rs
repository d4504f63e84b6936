//! The `drain` dedup policy component: one point per log template, mined online.
sg_dedup_core::learning_dedup_component!();
