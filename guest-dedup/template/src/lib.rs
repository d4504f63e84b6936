//! The `template` dedup policy component: one point per line template (volatile parts normalized).
sg_dedup_core::dedup_component!(Template);
