//! Components built into `sg-host` (compiled by `host/build.rs` from this workspace).

/// A component embedded in the binary.
#[derive(Debug, PartialEq, Eq)]
pub struct Builtin {
    /// Name used as `builtin:NAME`.
    pub name: &'static str,
    /// The component bytes.
    pub bytes: &'static [u8],
    /// Path it was built at (for tests and benchmarks).
    pub built_at: &'static str,
}

/// The corrected features component (the default).
pub static STREAMGUARD: Builtin = Builtin {
    name: "streamguard",
    bytes: include_bytes!(env!("SG_GUEST_STREAMGUARD")),
    built_at: env!("SG_GUEST_STREAMGUARD"),
};

/// The corrected features component, 0.2, on `streamguard:features@2.0.0` (window-bounded,
/// `unique_destinations`, state carried across upgrades).
pub static STREAMGUARD_V2: Builtin = Builtin {
    name: "streamguard-v2",
    bytes: include_bytes!(env!("SG_GUEST_STREAMGUARD_V2")),
    built_at: env!("SG_GUEST_STREAMGUARD_V2"),
};

/// The Spark-compatible features component.
pub static SPARK_COMPAT: Builtin = Builtin {
    name: "spark-compat",
    bytes: include_bytes!(env!("SG_GUEST_SPARK_COMPAT")),
    built_at: env!("SG_GUEST_SPARK_COMPAT"),
};

/// The Isolation Forest detector component.
pub static IFOREST: Builtin =
    Builtin { name: "iforest", bytes: include_bytes!(env!("SG_GUEST_IFOREST")), built_at: env!("SG_GUEST_IFOREST") };

/// The `exact` dedup policy component.
pub static DEDUP_EXACT: Builtin = Builtin {
    name: "exact",
    bytes: include_bytes!(env!("SG_GUEST_DEDUP_EXACT")),
    built_at: env!("SG_GUEST_DEDUP_EXACT"),
};

/// The `template` dedup policy component (the default policy).
pub static DEDUP_TEMPLATE: Builtin = Builtin {
    name: "template",
    bytes: include_bytes!(env!("SG_GUEST_DEDUP_TEMPLATE")),
    built_at: env!("SG_GUEST_DEDUP_TEMPLATE"),
};

/// The `drain` dedup policy component (log templates mined online, `streamguard:dedup@2.0.0`).
pub static DEDUP_DRAIN: Builtin = Builtin {
    name: "drain",
    bytes: include_bytes!(env!("SG_GUEST_DEDUP_DRAIN")),
    built_at: env!("SG_GUEST_DEDUP_DRAIN"),
};

const ALL: [&Builtin; 7] = [&STREAMGUARD, &STREAMGUARD_V2, &SPARK_COMPAT, &IFOREST, &DEDUP_EXACT, &DEDUP_TEMPLATE, &DEDUP_DRAIN];

/// The builtin called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    ALL.into_iter().find(|b| b.name == name)
}

/// Names of all builtins.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|b| b.name).collect()
}
