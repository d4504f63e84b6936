//! Labelled log sets and the log-parsing metric, shared by the template tests and the
//! `log_parsing` benchmark (which includes this file).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The labelled sets of `tests/fixtures/log-templates/` besides HDFS.
pub const LABELLED: [&str; 4] = ["sshd.tsv", "syslog-kernel.tsv", "java-exceptions.tsv", "key-value.tsv"];

/// Share of lines whose predicted group is exactly their true group.
pub fn grouping_accuracy<P: std::hash::Hash + Eq>(predicted: &[P], truth: &[String]) -> f64 {
    let mut groups: HashMap<&P, Vec<usize>> = HashMap::new();
    for (i, p) in predicted.iter().enumerate() {
        groups.entry(p).or_default().push(i);
    }
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for t in truth {
        *sizes.entry(t).or_default() += 1;
    }
    let right: usize = groups
        .values()
        .filter(|members| {
            let label = &truth[members[0]];
            members.iter().all(|&i| &truth[i] == label) && sizes[label.as_str()] == members.len()
        })
        .map(Vec::len)
        .sum();
    right as f64 / truth.len() as f64
}

/// A labelled set: `LABEL<TAB>LINE` per line (`tests/fixtures/log-templates/`).
pub fn labelled(path: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(|l| l.split_once('\t').expect("LABEL<TAB>LINE")).map(|(label, line)| (line.to_string(), label.to_string())).unzip()
}

/// The first 2,000 lines of the shared HDFS sample (at `path`), labelled with loghub's HDFS
/// templates.
pub fn hdfs(path: &Path) -> (Vec<String>, Vec<String>) {
    let templates: Vec<regex::Regex> = [
        r"^Receiving block blk_\S+ src: \S+ dest: \S+$",
        r"^BLOCK\* NameSystem\.addStoredBlock: blockMap updated: \S+ is added to blk_\S+ size \d+$",
        r"^PacketResponder \d+ for block blk_\S+ terminating$",
        r"^BLOCK\* NameSystem\.delete: blk_\S+ is added to invalidSet of \S+$",
        r"^Deleting block blk_\S+ file .*$",
        r"^Received block blk_\S+ of size \d+ from \S+$",
        r"^\S+ Served block blk_\S+ to \S+$",
        r"^\S+:Got exception while serving blk_\S+ to \S+$",
        r"^Unexpected error trying to delete block blk_\S+\. BlockInfo not found in volumeMap\.$",
        r"^\S+ Starting thread to transfer block blk_\S+ to .*$",
        r"^BLOCK\* ask \S+ to replicate blk_\S+ to datanode\(s\) .*$",
        r"^Received block blk_\S+ src: \S+ dest: \S+ of size \d+$",
        r"^\S+:Transmitted block blk_\S+ to \S+$",
        r"^writeBlock blk_\S+ received exception .*$",
        r"^Verification succeeded for blk_\S+$",
        r"^Receiving empty packet for block blk_\S+$",
        r"^BLOCK\* NameSystem\.addStoredBlock: addStoredBlock request received for blk_\S+ on \S+ size \d+ But it does not belong to any file\.$",
        r"^BLOCK\* NameSystem\.addStoredBlock: Redundant addStoredBlock request received for blk_\S+ on \S+ size \d+$",
        r"^Exception in receiveBlock for block blk_\S+ .*$",
        r"^Changing block file offset of block blk_\S+ from \d+ to \d+ meta file offset to \d+$",
        r"^PendingReplicationMonitor timed out block blk_\S+$",
        r"^PacketResponder blk_\S+ \d+ Exception .*$",
        r"^\S+:Exception writing block blk_\S+ to mirror \S+$",
        r"^PacketResponder \d+ for block blk_\S+ Interrupted\.$",
    ]
    .iter()
    .map(|p| regex::Regex::new(p).unwrap())
    .collect();
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .take(2000)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .map(|line| {
            let label = templates.iter().position(|t| t.is_match(&line)).map_or_else(|| format!("other: {line}"), |i| format!("H{}", i + 1));
            (line, label)
        })
        .unzip()
}


/// Runs drain3 (`tests/helpers/drain3_groups.py` with `args`, by `python`) over `lines`; its
/// JSON answer, as bytes.
pub fn drain3(mut python: Command, workspace: &Path, lines: &[String], args: &[&str]) -> Vec<u8> {
    let mut child = python
        .arg(workspace.join("tests/helpers/drain3_groups.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python with drain3");
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "drain3 failed");
    out.stdout
}
