//! The records that flow through sg-host, shared by every layer: framed messages with their
//! input positions ([`Chunk`], [`Position`]), security events decoded into columnar batches
//! ([`events`]), log records for the dedup policy ([`LogRecords`]) and the messages refused on
//! the way ([`DeadLetter`]). No I/O and no WebAssembly here.

#![deny(missing_docs)]

mod chunk;
mod dead_letter;
pub mod events;
mod logs;
pub mod time;

pub use chunk::{Chunk, Position, Span};
pub use dead_letter::{Cut, DeadLetter, KEPT_PREFIX_BYTES, RefusedBy};
pub use logs::LogRecords;
