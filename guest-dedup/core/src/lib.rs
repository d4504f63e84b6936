//! Dedup policies over log lines, in plain Rust: the logic of the `exact` and `template`
//! components of `streamguard:dedup@1.0.0` and of the `drain` template miner of
//! `streamguard:dedup@2.0.0`, testable and usable natively.

pub mod columns;
#[cfg(feature = "component")]
pub mod component;
#[cfg(feature = "component")]
pub mod component_v2;
pub mod drain;
pub mod normalize;
pub mod raw;

pub use columns::{TextColumn, TextColumnBuf};

/// A dedup policy: what makes two log lines the same point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Key = the line itself (the old job's intent).
    Exact,
    /// Key = the line's template: volatile parts (ids, addresses, numbers, times) normalized.
    Template,
}

impl Policy {
    /// Implementation name.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Exact => "exact",
            Policy::Template => "template",
        }
    }

    /// Implementation version.
    pub fn version(self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// One paragraph on what the policy keys on.
    pub fn description(self) -> &'static str {
        match self {
            Policy::Exact => {
                "One point per distinct line: the key and the embedded text are the `text` field \
                 (or `message`); a raw HDFS line is first normalized as the reference log \
                 processor did."
            }
            Policy::Template => {
                "One point per line template: the reference processor's normalization, then \
                 loghub timestamps, block ids (`blk_-?\\d+`), trailing ports and remaining \
                 numbers replaced, so lines that differ only in those share one point; the \
                 template is the key and the embedded text."
            }
        }
    }

    fn key(self, line: &str) -> String {
        match self {
            Policy::Exact => line.to_string(),
            Policy::Template => normalize::template(line),
        }
    }

    fn raw_key(self, content: &str) -> String {
        match self {
            Policy::Exact => normalize::reference(content),
            Policy::Template => normalize::template(content),
        }
    }
}

/// How the host read the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// JSON log messages.
    Json,
    /// Raw loghub HDFS lines.
    RawHdfs,
}

/// A batch of log records as columns (empty string = absent).
#[derive(Debug, Clone, Copy)]
pub struct LogBatch<'a> {
    /// How the records were read.
    pub format: InputFormat,
    /// `text` (else `message`), or the raw line.
    pub line: TextColumn<'a>,
    /// `original_text`.
    pub original_text: TextColumn<'a>,
    /// `timestamp`.
    pub timestamp: TextColumn<'a>,
    /// `log_level`.
    pub log_level: TextColumn<'a>,
    /// `source`.
    pub source: TextColumn<'a>,
    /// `node_type`.
    pub node_type: TextColumn<'a>,
}

/// A policy's answer for a batch, one row per record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions {
    /// Store (`true`) or filter out.
    pub keep: Vec<bool>,
    /// The dedup key.
    pub key: TextColumnBuf,
    /// The text to embed.
    pub embed_text: TextColumnBuf,
    /// Payload fields set by the policy.
    pub payload: Vec<(String, TextColumnBuf)>,
}

/// Where a policy writes its decision for one kept line: the key, the text to embed, and the
/// values of its extra payload fields, in the order it named them.
pub struct Row<'a> {
    key: &'a mut TextColumnBuf,
    embed: &'a mut TextColumnBuf,
    text: &'a mut TextColumnBuf,
    extras: &'a mut [TextColumnBuf],
}

impl Row<'_> {
    /// Sets the row: `key` (also the `text` payload), `embed`, and one value per extra field.
    pub fn set(&mut self, key: &str, embed: &str, extras: &[&str]) {
        self.set_with(key, embed, |columns| {
            for (column, value) in columns.iter_mut().zip(extras) {
                column.push(value);
            }
        });
    }

    /// [`set`](Self::set), with `extras` pushing one row onto each extra field's column.
    pub fn set_with(&mut self, key: &str, embed: &str, extras: impl FnOnce(&mut [TextColumnBuf])) {
        self.key.push(key);
        self.embed.push(embed);
        self.text.push(key);
        extras(self.extras);
    }
}

/// Decides every record of a batch.
pub fn decide(policy: Policy, batch: &LogBatch<'_>) -> Result<Decisions, String> {
    decide_with(batch, &[], |text, format, row| {
        let key = match format {
            InputFormat::Json => policy.key(text),
            InputFormat::RawHdfs => policy.raw_key(text),
        };
        row.set(&key, &key, &[]);
    })
}

/// Decides every record of a batch with the template miner, which learns from each line in
/// order: the key is the template's stable key, the embedded text the template; the payload
/// adds `template` and `template_params` (a JSON array of the line's variable parts).
pub fn decide_learning(drain: &mut drain::Drain, batch: &LogBatch<'_>) -> Result<Decisions, String> {
    decide_with(batch, &["template", "template_params"], |text, _, row| {
        let parsed = drain.add(text);
        row.set_with(parsed.key, parsed.template, |columns| {
            let [template, params] = columns else { unreachable!("two extra fields named above") };
            template.push(parsed.template);
            params.push_json_strings(parsed.params());
        });
    })
}

/// Decides every record of a batch with `decide`, which sees each kept line (a JSON record's
/// line, or a raw line's content) in order and sets its [`Row`]; `extra` names the payload
/// fields it fills.
fn decide_with(batch: &LogBatch<'_>, extra: &[&str], mut decide: impl FnMut(&str, InputFormat, &mut Row<'_>)) -> Result<Decisions, String> {
    let rows = batch.line.len();
    for (column, name) in [
        (batch.line, "line"),
        (batch.original_text, "original_text"),
        (batch.timestamp, "timestamp"),
        (batch.log_level, "log_level"),
        (batch.source, "source"),
        (batch.node_type, "node_type"),
    ] {
        column.check(rows, name)?;
    }
    let lines = batch.line.check_text(rows, "line")?;
    let bytes = batch.line.bytes.len();
    let mut out = Decisions {
        keep: Vec::with_capacity(rows),
        key: TextColumnBuf::with_capacity(rows, bytes),
        embed_text: TextColumnBuf::with_capacity(rows, bytes),
        payload: Vec::new(),
    };
    let mut text = TextColumnBuf::with_capacity(rows, bytes);
    let mut extras: Vec<TextColumnBuf> = extra.iter().map(|_| TextColumnBuf::with_capacity(rows, bytes)).collect();
    let blanks = vec![""; extra.len()];
    macro_rules! row {
        () => {
            Row { key: &mut out.key, embed: &mut out.embed_text, text: &mut text, extras: &mut extras }
        };
    }
    match batch.format {
        InputFormat::Json => {
            for i in 0..rows {
                out.keep.push(true);
                decide(lines.get(i), InputFormat::Json, &mut row!());
            }
        }
        InputFormat::RawHdfs => {
            let mut level = TextColumnBuf::with_capacity(rows, rows * 4);
            let mut timestamp = TextColumnBuf::with_capacity(rows, rows * 19);
            let mut node_type = TextColumnBuf::with_capacity(rows, rows * 8);
            let mut source = TextColumnBuf::with_capacity(rows, rows * 13);
            let mut original = TextColumnBuf::with_capacity(rows, bytes);
            for i in 0..rows {
                let line = lines.get(i);
                let kept = raw::is_kept(line);
                let parsed = raw::parse(line);
                out.keep.push(kept);
                if kept {
                    decide(parsed.content, InputFormat::RawHdfs, &mut row!());
                } else {
                    row!().set("", "", &blanks);
                }
                level.push(parsed.level);
                timestamp.push(&parsed.timestamp);
                node_type.push(parsed.node_type);
                source.push(&format!("hdfs_{}", parsed.node_type));
                original.push(line.trim_end_matches(['\r', '\n']));
            }
            out.payload.push(("log_level".into(), level));
            out.payload.push(("timestamp".into(), timestamp));
            out.payload.push(("node_type".into(), node_type));
            out.payload.push(("source".into(), source));
            out.payload.push(("original_text".into(), original));
        }
    }
    out.payload.insert(0, ("text".into(), text));
    out.payload.extend(extra.iter().map(|n| n.to_string()).zip(extras));
    Ok(out)
}
