//! The `exact` dedup policy, except on a batch holding a line that contains `hostile_trap`:
//! then it panics (a trap), so the host must isolate exactly those lines.

use sg_dedup_core::component::bindings::exports::streamguard::dedup::policy::Guest;
use sg_dedup_core::component::bindings::streamguard::dedup::types as wire;
use sg_dedup_core::{InputFormat, LogBatch, Policy, TextColumn, TextColumnBuf, decide};

struct Hostile;

fn view(c: &wire::TextColumn) -> TextColumn<'_> {
    TextColumn { bytes: &c.bytes, offsets: &c.offsets }
}

fn wire_column(c: TextColumnBuf) -> wire::TextColumn {
    wire::TextColumn { bytes: c.bytes, offsets: c.offsets }
}

impl Guest for Hostile {
    fn describe() -> wire::Descriptor {
        wire::Descriptor { name: "hostile-policy".into(), version: "0.1.0".into(), description: "traps on hostile_trap".into() }
    }

    fn decide(batch: wire::LogBatch) -> Result<wire::Decisions, String> {
        // A batch may be a window of a larger buffer: look only at its own lines.
        let o = &batch.line.offsets;
        let own = &batch.line.bytes[o[0] as usize..o[o.len() - 1] as usize];
        if own.windows(12).any(|w| w == b"hostile_trap") {
            panic!("hostile policy: trap on a marked line");
        }
        let view = LogBatch {
            format: match batch.format {
                wire::InputFormat::Json => InputFormat::Json,
                wire::InputFormat::RawHdfs => InputFormat::RawHdfs,
            },
            line: view(&batch.line),
            original_text: view(&batch.original_text),
            timestamp: view(&batch.timestamp),
            log_level: view(&batch.log_level),
            source: view(&batch.source),
            node_type: view(&batch.node_type),
        };
        let d = decide(Policy::Exact, &view)?;
        Ok(wire::Decisions {
            keep: d.keep,
            key: wire_column(d.key),
            embed_text: wire_column(d.embed_text),
            payload: d.payload.into_iter().map(|(name, values)| wire::PayloadColumn { name, values: wire_column(values) }).collect(),
        })
    }
}

sg_dedup_core::component::bindings::export!(Hostile);
