//! A features component that computes the `streamguard` features, except on events whose
//! `event_type` names a hostile behaviour:
//! - `hostile_trap`: panics (a trap);
//! - `hostile_loop`: never returns (hits the call deadline);
//! - `hostile_bomb`: allocates until the memory cap stops it;
//! - `hostile_recurse`: recurses until the stack is exhausted;
//! - `hostile_snoop`: reads a file, the environment and the network, and panics with what it got
//!   (the host grants none of them, so the message must show nothing was obtained).

use sg_features_core::Flavor;
use sg_features_core::component::bindings::exports::streamguard::features::extractor::{Guest, GuestAggregation};
use sg_features_core::component::bindings::streamguard::features::types as wire;
use sg_features_core::component::{Aggregation, FlavorComponent};

struct Inner;

impl FlavorComponent for Inner {
    const FLAVOR: Flavor = Flavor::Streamguard;
}

struct Hostile;

impl Guest for Hostile {
    type Aggregation = HostileAggregation;

    fn describe() -> wire::Descriptor {
        <Inner as Guest>::describe()
    }
}

struct HostileAggregation(Aggregation<Inner>);

#[inline(never)]
fn recurse(depth: u64, sink: &mut [u64; 64]) -> u64 {
    sink[(depth % 64) as usize] = depth;
    let mut local = *sink;
    local[0] = recurse(depth + 1, &mut local);
    std::hint::black_box(local[0] + local[63])
}

fn snoop() -> String {
    let file = std::fs::read_to_string("/etc/hostname").map_err(|e| e.kind().to_string());
    let env: Vec<(String, String)> = std::env::vars().collect();
    let net = std::net::TcpStream::connect("127.0.0.1:9").map(|_| ()).map_err(|e| e.kind().to_string());
    format!("snoop: file={file:?} env={env:?} net={net:?}")
}

fn misbehave(kind: &[u8]) {
    match kind {
        b"hostile_trap" => panic!("hostile component: trap on a marked event"),
        b"hostile_loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        b"hostile_bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        b"hostile_recurse" => {
            let mut sink = [0u64; 64];
            std::hint::black_box(recurse(0, &mut sink));
        }
        b"hostile_snoop" => panic!("{}", snoop()),
        _ => {}
    }
}

impl GuestAggregation for HostileAggregation {
    fn new() -> Self {
        HostileAggregation(<Aggregation<Inner> as GuestAggregation>::new())
    }

    fn push(&self, batch: wire::EventBatch) -> Vec<wire::RejectedEvent> {
        let types = &batch.event_type;
        for &code in &types.codes {
            if code != u32::MAX {
                let k = code as usize;
                misbehave(&types.dict_bytes[types.dict_offsets[k] as usize..types.dict_offsets[k + 1] as usize]);
            }
        }
        self.0.push(batch)
    }

    fn take(&self) -> wire::FeatureTable {
        self.0.take()
    }
}

sg_features_core::component::bindings::export!(Hostile with_types_in sg_features_core::component::bindings);
