//! `streamguard` 0.2 under the version 0.2.1: the same features, another version, so a test can
//! upgrade a `features@2` component and see its windows' state carried over.
sg_features_core::features_component_v2!(Streamguard2, "0.2.1");
