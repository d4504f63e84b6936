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

/// The Spark-compatible features component.
pub static SPARK_COMPAT: Builtin = Builtin {
    name: "spark-compat",
    bytes: include_bytes!(env!("SG_GUEST_SPARK_COMPAT")),
    built_at: env!("SG_GUEST_SPARK_COMPAT"),
};

/// The Isolation Forest detector component.
pub static IFOREST: Builtin =
    Builtin { name: "iforest", bytes: include_bytes!(env!("SG_GUEST_IFOREST")), built_at: env!("SG_GUEST_IFOREST") };

const ALL: [&Builtin; 3] = [&STREAMGUARD, &SPARK_COMPAT, &IFOREST];

/// The builtin called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    ALL.into_iter().find(|b| b.name == name)
}

/// Names of all builtins.
pub fn names() -> Vec<&'static str> {
    ALL.iter().map(|b| b.name).collect()
}
