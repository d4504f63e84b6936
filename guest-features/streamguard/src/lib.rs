//! The `streamguard` features component: the corrected per-user features.
sg_features_core::features_component!(Streamguard);
