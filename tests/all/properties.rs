//! Property tests (proptest) where a fuzzer would go: the event decoder, the log-record decoder,
//! the model loader and the bundle manifest, fed arbitrary and mutated input. Each must answer
//! — a record, a dead letter with a reason, or an error — and never panic or lose a message.

use std::collections::BTreeSet;

use proptest::prelude::*;
use sg_dedup_core::InputFormat;
use sg_model::{Chunk, LogRecords};
use sg_model::events::decode_chunk;

/// Lines of JSON-ish junk: fragments of real events, mutated.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let real = r#"{"timestamp":"2026-01-01T00:00:00Z","user_id":"u1","event_type":"login","source_ip":"10.0.0.1","status":"success","threat_score":0.5}"#;
    prop_oneof![
        proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..200),
        (0..real.len(), any::<u8>()).prop_map(move |(at, b)| {
            let mut v = real.as_bytes().to_vec();
            v[at] = if b == b'\n' { b' ' } else { b };
            v
        }),
        (0..real.len()).prop_map(move |cut| real.as_bytes()[..cut].to_vec()),
        Just(real.as_bytes().to_vec()),
    ]
}

/// A position as a comparable key.
fn at(p: sg_model::Position) -> String {
    format!("{p:?}")
}

fn chunk_of(lines: &[Vec<u8>]) -> Chunk {
    Chunk::from_lines(lines.join(&b'\n'), 1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    /// Every non-blank message is exactly one event or one dead letter, at its own position.
    #[test]
    fn the_event_decoder_accounts_for_every_message(lines in proptest::collection::vec(line(), 1..40), limit in 16usize..300) {
        let chunk = chunk_of(&lines);
        let messages: BTreeSet<_> = (0..chunk.len()).filter(|&i| !chunk.message(i).iter().all(u8::is_ascii_whitespace)).map(|i| at(chunk.positions[i])).collect();
        let decoded = decode_chunk(chunk, limit);
        let mut seen: Vec<String> = decoded.batch.positions.iter().map(|p| at(*p)).collect();
        seen.extend(decoded.dead.iter().map(|d| at(d.position)));
        prop_assert_eq!(seen.len(), messages.len(), "a message counted twice or lost");
        prop_assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), messages);
        prop_assert!(decoded.dead.iter().all(|d| !d.reason.is_empty()));
    }

    /// The same for log messages, as JSON and as raw HDFS lines.
    #[test]
    fn the_log_decoder_accounts_for_every_message(lines in proptest::collection::vec(line(), 1..40), limit in 16usize..300, raw in any::<bool>()) {
        let chunk = chunk_of(&lines);
        let format = if raw { InputFormat::RawHdfs } else { InputFormat::Json };
        let mut dead = Vec::new();
        let records = LogRecords::decode(&chunk, format, limit, &mut dead);
        let mut rows: Vec<usize> = records.message.clone();
        let dead_positions: BTreeSet<String> = dead.iter().map(|d| at(d.position)).collect();
        prop_assert_eq!(dead_positions.len(), dead.len(), "one dead letter per message");
        for &m in &rows {
            prop_assert!(!dead_positions.contains(&at(chunk.positions[m])), "a message both a record and a dead letter");
        }
        rows.dedup();
        prop_assert_eq!(rows.len(), records.len(), "one record per message");
        prop_assert!(records.len() + dead.len() <= chunk.len());
    }

    /// Arbitrary and mutated model files: loaded and valid, or refused — never a panic or a
    /// hang in scoring what was loaded.
    #[test]
    fn the_model_loader_refuses_what_it_cannot_use(at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let good = model_bytes();
        let mut mutated = good.to_vec();
        let i = at.index(mutated.len());
        mutated[i] = byte;
        for bytes in [&mutated[..], &good[..cut.index(good.len())]] {
            if let Ok(model) = sg_iforest::Model::from_bytes(bytes) {
                let n = model.feature_names().len();
                let x = vec![1.0f32; n];
                if let Ok(m) = sg_iforest::Matrix::new(&x, 1, n) {
                    let _ = model.score_samples(&m);
                }
            }
        }
    }

    /// Arbitrary bundle manifests: opened and verified, or refused with the reason.
    #[test]
    fn a_bundle_manifest_is_verified_or_refused(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let (dir, manifest) = bundle();
        let mut bytes = manifest.clone();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let b = dir.path().join("bundle");
        std::fs::write(b.join(sg_core::bundle::MANIFEST), &bytes).unwrap();
        if let Err(e) = sg_core::bundle::Bundle::open(&b, &sg_core::bundle::Trust::new(&[], true).unwrap()) {
            let reason = format!("{e:#}");
            prop_assert!(!reason.is_empty());
        }
    }
}

/// A small trained model's file.
fn model_bytes() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let x: Vec<f32> = (0..200).map(|i| ((i * 7919) % 101) as f32).collect();
        let m = sg_iforest::Matrix::new(&x, 100, 2).unwrap();
        let params = sg_iforest::Params { n_estimators: 5, ..sg_iforest::Params::default() };
        sg_iforest::fit(&m, &["a".into(), "b".into()], &params).unwrap().to_bytes()
    })
}

/// A bundle with a model in a fresh directory, and its manifest's bytes.
fn bundle() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.json");
    std::fs::write(&model, model_bytes()).unwrap();
    let out = dir.path().join("b");
    sg_core::bundle::Bundle::create(&out, &[], Some(&model), &[], &sg_core::runtime::Limits::default(), None).unwrap();
    let manifest = std::fs::read(out.join(sg_core::bundle::MANIFEST)).unwrap();
    std::fs::rename(&out, dir.path().join("bundle")).unwrap();
    (dir, manifest)
}
