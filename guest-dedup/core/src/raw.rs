//! Raw HDFS log lines (loghub format `yyMMdd HHmmss pid LEVEL component: content`): the
//! reference processor's filtering and level extraction.

/// Levels in the order the reference processor tries them.
const LEVELS: [&str; 6] = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE", "FATAL"];

/// One raw line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// The message after `component: `, or the whole line when it has no loghub header.
    pub content: &'a str,
    /// The first of ERROR/WARN/INFO/DEBUG/TRACE/FATAL found with spaces around it, else `UNKNOWN`.
    pub level: &'static str,
    /// `yyyy-MM-ddTHH:mm:ss` from the header, or empty.
    pub timestamp: String,
    /// `datanode` or `namenode` from the logging component, else `unknown`.
    pub node_type: &'static str,
}

/// Whether the reference processor keeps a line: it must mention a block.
pub fn is_kept(line: &str) -> bool {
    line.contains("blk_")
}

/// The level as the reference processor extracts it.
pub fn level(line: &str) -> &'static str {
    LEVELS
        .iter()
        .find(|l| {
            line.match_indices(*l).any(|(at, _)| {
                line[..at].ends_with(' ') && line[at + l.len()..].starts_with(' ')
            })
        })
        .copied()
        .unwrap_or("UNKNOWN")
}

/// Takes a raw line apart.
pub fn parse(line: &str) -> RawLine<'_> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut fields = line.splitn(5, ' ');
    let header = (fields.next(), fields.next(), fields.next(), fields.next(), fields.next());
    let (timestamp, component, content) = match header {
        (Some(date), Some(time), Some(pid), Some(_level), Some(rest))
            if is_digits(date, 6) && is_digits(time, 6) && pid.bytes().all(|b| b.is_ascii_digit()) =>
        {
            match rest.split_once(": ") {
                Some((component, content)) => (iso(date, time), component, content),
                None => (iso(date, time), "", rest),
            }
        }
        _ => (String::new(), "", line),
    };
    let node_type = if component.contains("DataNode") {
        "datanode"
    } else if component.contains("NameSystem") || component.contains("NameNode") || component.contains("FSNamesystem") {
        "namenode"
    } else {
        "unknown"
    };
    RawLine { content, level: level(line), timestamp, node_type }
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// `081109`, `203615` → `2008-11-09T20:36:15` (loghub years are 20yy).
fn iso(date: &str, time: &str) -> String {
    format!(
        "20{}-{}-{}T{}:{}:{}",
        &date[0..2],
        &date[2..4],
        &date[4..6],
        &time[0..2],
        &time[2..4],
        &time[4..6]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_loghub_line() {
        let raw = parse("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating");
        assert_eq!(raw.content, "PacketResponder 1 for block blk_38865049064139660 terminating");
        assert_eq!(raw.level, "INFO");
        assert_eq!(raw.timestamp, "2008-11-09T20:36:15");
        assert_eq!(raw.node_type, "datanode");
        assert_eq!(parse("081109 204005 35 INFO dfs.FSNamesystem: BLOCK* x").node_type, "namenode");
    }

    #[test]
    fn level_needs_spaces_and_follows_the_reference_order() {
        assert_eq!(level("x INFO y WARN z"), "WARN");
        assert_eq!(level("xINFO y"), "UNKNOWN");
        assert_eq!(level("a INFO"), "UNKNOWN");
        assert!(is_kept("a blk_1") && !is_kept("no block"));
    }

    #[test]
    fn a_line_without_header_is_all_content() {
        let raw = parse("free text blk_1");
        assert_eq!(raw.content, "free text blk_1");
        assert_eq!(raw.timestamp, "");
    }
}
