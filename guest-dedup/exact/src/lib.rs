//! The `exact` dedup policy component: one point per distinct line.
sg_dedup_core::dedup_component!(Exact);
