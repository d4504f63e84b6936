//! The `streamguard` 0.2 features component on `streamguard:features@2.0.0`: the corrected
//! features plus `unique_destinations`, window-bounded, carrying its state across upgrades.
sg_features_core::features_component_v2!(Streamguard2);
