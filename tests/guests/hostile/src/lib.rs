//! A features component that computes the `streamguard` features, except on events whose
//! `event_type` names a hostile behaviour:
//! - `hostile_trap`: panics (a trap);
//! - `hostile_loop`: never returns (hits the call deadline);
//! - `hostile_bomb`: allocates until the memory cap stops it;
//! - `hostile_recurse`: recurses until the stack is exhausted;
//! - `hostile_snoop`: reads a file, the environment and the network, and panics with what it got
//!   (the host grants none of them, so the message must show nothing was obtained).
//!
//! and, at `take`, when a marked event was pushed since the last one:
//! - `hostile_nan`: answers NaN for `avg_threat_score` of the marked event's user;
//! - `hostile_short`: answers one value too few in `total_events` (wrong output length);
//! - `hostile_huge`: tries to answer a key column of 512 MiB (a huge output; the memory cap
//!   stops it).

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

struct HostileAggregation {
    inner: Aggregation<Inner>,
    /// Take-level misbehaviour asked for since the last take: (kind, user of the marked event).
    marked: std::cell::RefCell<Vec<(&'static str, Vec<u8>)>>,
}

fn entry<'a>(d: &'a wire::DictColumn, code: u32) -> &'a [u8] {
    if code == u32::MAX { b"" } else { &d.dict_bytes[d.dict_offsets[code as usize] as usize..d.dict_offsets[code as usize + 1] as usize] }
}

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
        HostileAggregation { inner: <Aggregation<Inner> as GuestAggregation>::new(), marked: Default::default() }
    }

    fn push(&self, batch: wire::EventBatch) -> Vec<wire::RejectedEvent> {
        for (i, &code) in batch.event_type.codes.iter().enumerate() {
            let kind = entry(&batch.event_type, code);
            misbehave(kind);
            let at_take = [("hostile_nan", &b"hostile_nan"[..]), ("hostile_short", b"hostile_short"), ("hostile_huge", b"hostile_huge")];
            if let Some((name, _)) = at_take.iter().find(|(_, k)| *k == kind) {
                self.marked.borrow_mut().push((name, entry(&batch.user, batch.user.codes[i]).to_vec()));
            }
        }
        self.inner.push(batch)
    }

    fn take(&self) -> wire::FeatureTable {
        let mut table = self.inner.take();
        let marked = std::mem::take(&mut *self.marked.borrow_mut());
        for (kind, user) in marked {
            match kind {
                "hostile_nan" => {
                    let wire::ColumnData::Utf8(keys) = &table.columns[0] else { unreachable!("the key is utf8") };
                    let rows: Vec<usize> = (0..keys.codes.len()).filter(|&r| entry(keys, keys.codes[r]) == user.as_slice()).collect();
                    let wire::ColumnData::Float64(scores) = &mut table.columns[4] else { unreachable!("avg_threat_score") };
                    for r in rows {
                        scores[r] = f64::NAN;
                    }
                }
                "hostile_short" => {
                    let wire::ColumnData::Int64(totals) = &mut table.columns[1] else { unreachable!("total_events") };
                    totals.pop();
                }
                _ => {
                    let huge = vec![b'x'; 512 << 20];
                    std::hint::black_box(&huge);
                    let wire::ColumnData::Utf8(keys) = &mut table.columns[0] else { unreachable!("the key is utf8") };
                    keys.dict_bytes = huge;
                }
            }
        }
        table
    }
}

sg_features_core::component::bindings::export!(Hostile with_types_in sg_features_core::component::bindings);
