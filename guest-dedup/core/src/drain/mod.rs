//! Online log-template mining: Drain (P. He, J. Zhu, Z. Zheng, M. R. Lyu, "Drain: An Online Log
//! Parsing Approach with Fixed Depth Tree", ICWS 2017), as `drain3` implements it, with two
//! changes that make its templates usable as dedup keys:
//!
//! - **Stable keys.** A template's key is its first form (the masked tokens of the line that
//!   created it), kept while the template generalises (`<*>` where its lines differ). Drain's
//!   cluster numbers depend on the order of everything seen; the first form only on the lines
//!   seen up to it, so two miners fed the same lines agree, and a point stored under a template
//!   stays its point after the template generalises.
//! - **Covered lines change nothing.** A line that a template already covers (equal on every
//!   token the template keeps) joins it before any learning. In Drain, a line's similarity to its
//!   own template falls as the template generalises, so re-reading it could open a new template
//!   (a new key, a new point); here re-reading what was learned adds nothing.
//!
//! Lines are split on whitespace; masks (regexes, e.g. block ids, addresses, numbers) replace
//! what they match inside each token with `<NAME>` before anything else, as drain3's masking
//! does over the line (so `status=200` is `status=<NUM>`; a mask cannot span whitespace). The
//! tree, as drain3's: token count, then the first `depth − 3` tokens, never the last (a token
//! with a digit, or past `max_children`, goes under `<*>`); a leaf's templates are compared by
//! the share of equal tokens, and the best at or above `similarity` takes the line.

mod mask;

use rustc_hash::FxHashMap;

use mask::Masker;
use serde::{Deserialize, Serialize};

/// The wildcard a template holds where its lines differ.
pub const WILDCARD: &str = "<*>";

/// Version of the state [`Drain::export_state`] writes; [`Drain::import_state`] reads only it.
pub const STATE_FORMAT: &str = "drain-1";

/// A mask: what `pattern` matches inside a token becomes `<name>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mask {
    /// Placeholder name (`BLK` → `<BLK>`).
    pub name: String,
    /// Regex over a token's text.
    pub pattern: String,
}

/// The miner's parameters, given to the component at start (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Tree depth, counting the root and the token-count level (drain3's `depth`; ≥ 3).
    pub depth: usize,
    /// Least share of equal tokens for a line to join a template (drain3's `sim_th`).
    pub similarity: f64,
    /// Children per tree node before new tokens go under `<*>`.
    pub max_children: usize,
    /// Masks, tried in order on every token.
    pub masks: Vec<Mask>,
}

impl Default for Config {
    fn default() -> Self {
        let mask = |name: &str, pattern: &str| Mask { name: name.into(), pattern: pattern.into() };
        Config {
            depth: 4,
            similarity: 0.5,
            max_children: 100,
            masks: vec![
                mask("BLK", r"blk_-?\d+"),
                mask("IP", r"/?\d{1,3}(\.\d{1,3}){3}(:\d+)?"),
                mask("HEX", r"\b0[xX][0-9a-fA-F]+\b"),
                mask("NUM", r"\b[-+]?\d+(\.\d+)?\b"),
            ],
        }
    }
}

/// One learned template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Template {
    /// Its first form: the key of every line it takes.
    key: String,
    /// Its tokens now (`<*>` where its lines differed).
    tokens: Vec<String>,
    /// Lines it took.
    size: u64,
    /// The tree path it is filed under (token count, then leading tokens or `<*>`).
    path: Vec<String>,
    /// `tokens` joined (kept as the template changes).
    #[serde(skip)]
    text: String,
}

/// What the miner made of a line.
pub struct Parsed<'a> {
    /// The template's stable key (its first form).
    pub key: &'a str,
    /// The template now.
    pub template: &'a str,
    /// Whether this line created the template.
    pub new: bool,
    tokens: &'a [String],
    line: Tokens<'a>,
}

impl<'a> Parsed<'a> {
    /// The line's variable parts: its tokens where the template has `<*>` or a mask matched.
    pub fn params(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.tokens.iter().zip(self.line.raw()).filter(|(have, (_, masked))| same(have, WILDCARD) || *masked).map(|(_, (raw, _))| raw)
    }
}

/// A template as listed: key, current text, lines taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Stable key.
    pub key: String,
    /// Current template.
    pub template: String,
    /// Lines it took.
    pub size: u64,
}

#[derive(Default)]
struct Node {
    children: FxHashMap<String, usize>,
    templates: Vec<usize>,
}

/// Everything learned, as exported.
#[derive(Serialize, Deserialize)]
struct State {
    format: String,
    config: Config,
    templates: Vec<Template>,
}

/// The line being mined: its tokens, where each is in the line, and its masked text (in `buf`)
/// when a mask changed it. Kept between lines so that mining allocates nothing per line.
#[derive(Default)]
struct Scratch {
    tokens: Vec<Token>,
    buf: String,
}

/// Where a token's raw and masked text are (`masked` in [`Scratch::buf`], when masked).
#[derive(Clone, Copy)]
struct Token {
    raw: (u32, u32),
    masked: Option<(u32, u32)>,
}

impl Scratch {
    /// Splits `line` on whitespace (`char::is_whitespace`, as Python's `str.split`) and masks
    /// every token.
    fn read(&mut self, line: &str, masker: &mut Masker) {
        self.tokens.clear();
        self.buf.clear();
        let bytes = line.as_bytes();
        // Whitespace at `at`, and its width (a non-ASCII character is decoded and asked).
        let space = |at: usize| match bytes[at] {
            b @ 0..0x80 => (matches!(b, b'\t'..=b'\r' | b' '), 1),
            _ => line[at..].chars().next().map_or((false, 1), |c| (c.is_whitespace(), c.len_utf8())),
        };
        let mut at = 0;
        loop {
            while at < bytes.len() && let (true, width) = space(at) {
                at += width;
            }
            if at == bytes.len() {
                return;
            }
            // A token: up to the next whitespace, noting whether a mask may match in it.
            let (start, mut candidate) = (at, false);
            // (ASCII spelled out here: this loop is most of the miner's time.)
            while at < bytes.len() {
                let b = bytes[at];
                if b < 0x80 {
                    if matches!(b, b'\t'..=b'\r' | b' ') {
                        break;
                    }
                    at += 1;
                } else {
                    let (is_space, width) = space(at);
                    if is_space {
                        break;
                    }
                    at += width;
                }
                candidate |= masker.may_start(b);
            }
            self.push(line, start..at, candidate, masker);
        }
    }

    /// Adds the token at `range` of `line`, masked when it is a `candidate` for a mask.
    fn push(&mut self, line: &str, range: std::ops::Range<usize>, candidate: bool, masker: &mut Masker) {
        let mark = self.buf.len();
        let masked = candidate && masker.mask(&line[range.clone()], &mut self.buf);
        let masked = masked.then(|| (mark as u32, self.buf.len() as u32));
        self.tokens.push(Token { raw: (range.start as u32, range.end as u32), masked });
    }

    /// The tokens of `line`, as read last.
    fn view<'a>(&'a self, line: &'a str) -> Tokens<'a> {
        Tokens { line, buf: &self.buf, tokens: &self.tokens }
    }
}

/// A mined line's tokens: masked (what the tree and templates see) and raw.
#[derive(Clone, Copy)]
struct Tokens<'a> {
    line: &'a str,
    buf: &'a str,
    tokens: &'a [Token],
}

impl<'a> Tokens<'a> {
    fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The masked text of each token.
    fn iter(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let (line, buf) = (self.line, self.buf);
        self.tokens.iter().map(move |t| match t.masked {
            Some((s, e)) => &buf[s as usize..e as usize],
            None => &line[t.raw.0 as usize..t.raw.1 as usize],
        })
    }

    /// Each token's raw text, and whether a mask changed it.
    fn raw(&self) -> impl Iterator<Item = (&'a str, bool)> + use<'a> {
        let line = self.line;
        self.tokens.iter().map(move |t| (&line[t.raw.0 as usize..t.raw.1 as usize], t.masked.is_some()))
    }
}

/// The tree and the templates filed in it.
struct Tree {
    /// Leading tokens the tree looks at (`depth − 3`, as drain3: the root, the token-count
    /// layer and the leaf are three of the depth), never a line's last token.
    prefix: usize,
    similarity: f64,
    max_children: usize,
    /// The node of each token count (the tree's first layer).
    by_length: FxHashMap<usize, usize>,
    nodes: Vec<Node>,
    templates: Vec<Template>,
}

/// The miner.
pub struct Drain {
    config: Config,
    masker: Masker,
    scratch: Scratch,
    tree: Tree,
}

impl Drain {
    /// A miner with `config`, knowing nothing.
    pub fn new(config: Config) -> Result<Drain, String> {
        if config.depth < 3 {
            return Err(format!("depth {} is below 3", config.depth));
        }
        if !(0.0..=1.0).contains(&config.similarity) {
            return Err(format!("similarity {} is not within 0..=1", config.similarity));
        }
        if config.max_children < 2 {
            return Err(format!("max_children {} is below 2", config.max_children));
        }
        let masker = Masker::new(&config.masks)?;
        let tree = Tree {
            prefix: config.depth - 3,
            similarity: config.similarity,
            max_children: config.max_children,
            by_length: FxHashMap::default(),
            nodes: Vec::new(),
            templates: Vec::new(),
        };
        Ok(Drain { config, masker, scratch: Scratch::default(), tree })
    }

    /// The parameters in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Templates learned.
    pub fn len(&self) -> usize {
        self.tree.templates.len()
    }

    /// Whether nothing was learned yet.
    pub fn is_empty(&self) -> bool {
        self.tree.templates.is_empty()
    }

    /// Every template, in the order learned.
    pub fn templates(&self) -> Vec<Listed> {
        self.tree.templates.iter().map(|t| Listed { key: t.key.clone(), template: t.tokens.join(" "), size: t.size }).collect()
    }

    /// Learns from `line` and says which template it belongs to.
    pub fn add<'a>(&'a mut self, line: &'a str) -> Parsed<'a> {
        self.scratch.read(line, &mut self.masker);
        let tokens = self.scratch.view(line);
        let tree = &mut self.tree;
        let leaf = tree.leaf(tokens);
        // A template that covers the line takes it as it is.
        let covering = leaf.and_then(|n| tree.nodes[n].templates.iter().copied().find(|&t| covers(&tree.templates[t].tokens, tokens)));
        let (t, new) = match covering.or_else(|| leaf.and_then(|n| tree.best(n, tokens))) {
            Some(t) => {
                let template = &mut tree.templates[t];
                // A covering template stays as it is; the most similar one generalises.
                if covering.is_none() {
                    let mut changed = false;
                    for (have, seen) in template.tokens.iter_mut().zip(tokens.iter()) {
                        if !same(have, seen) && !same(have, WILDCARD) {
                            *have = WILDCARD.to_string();
                            changed = true;
                        }
                    }
                    if changed {
                        template.text = template.tokens.join(" ");
                    }
                }
                template.size += 1;
                (t, false)
            }
            None => (tree.insert(tokens), true),
        };
        let template = &tree.templates[t];
        Parsed { key: &template.key, template: &template.text, new, tokens: &template.tokens, line: tokens }
    }

    /// Everything learned and the parameters, as bytes ([`STATE_FORMAT`]).
    pub fn export_state(&self) -> Vec<u8> {
        let state = State { format: STATE_FORMAT.into(), config: self.config.clone(), templates: self.tree.templates.clone() };
        postcard::to_allocvec(&state).expect("serializable")
    }

    /// A miner that continues from `bytes` (from [`export_state`](Self::export_state)),
    /// with the parameters they were learned with; the tree is rebuilt as it was.
    pub fn import_state(bytes: &[u8]) -> Result<Drain, String> {
        let state: State = postcard::from_bytes(bytes).map_err(|e| format!("not a drain state: {e}"))?;
        if state.format != STATE_FORMAT {
            return Err(format!("state format {:?}, this miner reads {STATE_FORMAT:?}", state.format));
        }
        let mut drain = Drain::new(state.config)?;
        let tree = &mut drain.tree;
        for (t, template) in state.templates.into_iter().enumerate() {
            let Some((first, rest)) = template.path.split_first() else { return Err(format!("template {t} has no tree path")) };
            if rest.len() > tree.prefix || first.parse::<usize>().ok() != Some(template.tokens.len()) {
                return Err(format!("template {t}: a tree path that does not fit its tokens"));
            }
            let mut node = tree.length_node(template.tokens.len());
            for step in rest {
                node = tree.child(node, step);
            }
            tree.nodes[node].templates.push(t);
            let text = template.tokens.join(" ");
            tree.templates.push(Template { text, ..template });
        }
        Ok(drain)
    }
}

impl Tree {
    /// Leading tokens a line of `len` tokens is filed by.
    fn steps(&self, len: usize) -> usize {
        self.prefix.min(len.saturating_sub(1))
    }

    /// The leaf for `tokens`, if the tree has one.
    fn leaf(&self, tokens: Tokens<'_>) -> Option<usize> {
        let mut node = *self.by_length.get(&tokens.len())?;
        for token in tokens.iter().take(self.steps(tokens.len())) {
            let children = &self.nodes[node].children;
            node = *children.get(token).or_else(|| children.get(WILDCARD))?;
        }
        Some(node)
    }

    /// The most similar template of leaf `node` at or above the threshold (ties: more `<*>`).
    fn best(&self, node: usize, tokens: Tokens<'_>) -> Option<usize> {
        let mut best: Option<(usize, f64, usize)> = None;
        for &t in &self.nodes[node].templates {
            let template = &self.templates[t].tokens;
            let (mut equal, mut wild) = (0usize, 0usize);
            for (have, seen) in template.iter().zip(tokens.iter()) {
                if same(have, WILDCARD) {
                    wild += 1;
                } else if same(have, seen) {
                    equal += 1;
                }
            }
            let similarity = if tokens.len() == 0 { 1.0 } else { equal as f64 / tokens.len() as f64 };
            if best.is_none_or(|(_, s, w)| similarity > s || (similarity == s && wild > w)) {
                best = Some((t, similarity, wild));
            }
        }
        best.filter(|&(_, s, _)| s >= self.similarity).map(|(t, _, _)| t)
    }

    /// Files a new template for `tokens` (drain3's `add_seq_to_prefix_tree`).
    fn insert(&mut self, tokens: Tokens<'_>) -> usize {
        let mut path = vec![tokens.len().to_string()];
        let mut node = self.length_node(tokens.len());
        for token in tokens.iter().take(self.steps(tokens.len())) {
            let children = &self.nodes[node].children;
            let step = if children.contains_key(token) {
                token.to_string()
            } else if token.bytes().any(|b| b.is_ascii_digit()) {
                WILDCARD.to_string()
            } else if children.contains_key(WILDCARD) {
                if children.len() < self.max_children { token.to_string() } else { WILDCARD.to_string() }
            } else if children.len() + 1 < self.max_children {
                token.to_string()
            } else {
                WILDCARD.to_string()
            };
            node = self.child(node, &step);
            path.push(step);
        }
        let t = self.templates.len();
        let tokens: Vec<String> = tokens.iter().map(str::to_string).collect();
        let key = tokens.join(" ");
        self.templates.push(Template { text: key.clone(), key, tokens, size: 1, path });
        self.nodes[node].templates.push(t);
        t
    }

    /// The node of lines of `len` tokens, made if missing.
    fn length_node(&mut self, len: usize) -> usize {
        if let Some(&n) = self.by_length.get(&len) {
            return n;
        }
        self.nodes.push(Node::default());
        self.by_length.insert(len, self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// The child of `node` under `token`, made if missing.
    fn child(&mut self, node: usize, token: &str) -> usize {
        if let Some(&c) = self.nodes[node].children.get(token) {
            return c;
        }
        let c = self.nodes.len();
        self.nodes.push(Node::default());
        self.nodes[node].children.insert(token.to_string(), c);
        c
    }
}

/// Whether two tokens are equal: eight bytes at a time, inlined (a WebAssembly `memcmp` is a
/// call to a loop over bytes, and comparing tokens is most of what matching a line does).
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (mut ac, mut bc) = (a.chunks_exact(8), b.chunks_exact(8));
    ac.by_ref().zip(bc.by_ref()).all(|(x, y)| u64::from_ne_bytes(x.try_into().unwrap()) == u64::from_ne_bytes(y.try_into().unwrap()))
        && ac.remainder().iter().zip(bc.remainder()).all(|(x, y)| x == y)
}

/// Whether `template` keeps only tokens equal to the line's (same length).
fn covers(template: &[String], tokens: Tokens<'_>) -> bool {
    template.len() == tokens.len() && template.iter().zip(tokens.iter()).all(|(have, seen)| same(have, WILDCARD) || same(have, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the miner made of a line, owned.
    #[derive(Debug, PartialEq)]
    struct Owned {
        key: String,
        template: String,
        params: Vec<String>,
        new: bool,
    }

    fn add(d: &mut Drain, line: &str) -> Owned {
        let p = d.add(line);
        Owned { key: p.key.into(), template: p.template.into(), params: p.params().map(str::to_string).collect(), new: p.new }
    }

    #[test]
    fn lines_split_as_split_whitespace_does() {
        let mut d = Drain::new(Config { masks: Vec::new(), ..Config::default() }).unwrap();
        for line in ["", "   ", "a", " a  b\tc\r\n", "x\u{a0}y\u{2003}z\u{3000}", "é ü\u{85}ß", "\u{b}a\u{c}b\u{1c}c"] {
            let want: Vec<&str> = line.split_whitespace().collect();
            d.scratch.read(line, &mut d.masker);
            assert_eq!(d.scratch.view(line).iter().collect::<Vec<_>>(), want, "{line:?}");
        }
    }

    #[test]
    fn tokens_compare_as_strings_do() {
        let words = ["", "a", "<*>", "<*", "abcdefgh", "abcdefgi", "abcdefghijklmnopq", "abcdefghijklmnopr", "bbcdefghijklmnopq"];
        for a in words {
            for b in words {
                assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn templates_generalise_and_keep_their_first_key() {
        let mut d = Drain::new(Config::default()).unwrap();
        let a = add(&mut d, "Receiving block blk_-123 src: /10.0.0.1:5 dest: /10.0.0.2:50010");
        assert!(a.new);
        assert_eq!(a.key, "Receiving block <BLK> src: <IP> dest: <IP>");
        assert_eq!(a.params, ["blk_-123", "/10.0.0.1:5", "/10.0.0.2:50010"]);
        let b = add(&mut d, "Deleting block blk_1 file /a/b");
        let c = add(&mut d, "Deleting block blk_2 file /c/d/e");
        assert_eq!(b.key, c.key);
        assert_eq!(c.template, "Deleting block <BLK> file <*>");
        assert_eq!(c.params, ["blk_2", "/c/d/e"]);
        // Re-reading the first line after generalisation: the same key, nothing new.
        let again = add(&mut d, "Deleting block blk_1 file /a/b");
        assert!(!again.new && again.key == b.key);
        assert_eq!(d.len(), 2);
        // Masks work inside tokens, as drain3's do over the line.
        assert_eq!(add(&mut d, "status=200 took 31ms sshd[42]: ok").key, "status=<NUM> took 31ms sshd[<NUM>]: ok");
    }

    #[test]
    fn a_line_stays_with_the_template_that_covers_it() {
        let mut d = Drain::new(Config { similarity: 0.5, ..Config::default() }).unwrap();
        let first = add(&mut d, "a b c d e f");
        add(&mut d, "a b x y e f");
        add(&mut d, "a b x z w f");
        // Too far from `a b <*> <*> <*> f`: a template of its own, five sixths like the first line.
        let other = add(&mut d, "a b c d e g");
        assert!(other.new);
        // Drain would now give the first line to the closer `a b c d e g`, under another key;
        // the template that covers it keeps it.
        let again = add(&mut d, "a b c d e f");
        assert_eq!(again.key, first.key);
        assert_eq!(again.template, "a b <*> <*> <*> f");
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn the_state_round_trips_and_learning_continues_as_before() {
        let lines: Vec<String> = (0..200).map(|i| format!("user u{} logged in from 10.0.0.{} port {}", i % 7, i % 250, 1000 + i)).collect();
        let mut whole = Drain::new(Config::default()).unwrap();
        let mut first = Drain::new(Config::default()).unwrap();
        for l in &lines[..100] {
            add(&mut whole, l);
            add(&mut first, l);
        }
        let mut second = Drain::import_state(&first.export_state()).unwrap();
        for l in &lines[100..] {
            assert_eq!(add(&mut whole, l), add(&mut second, l));
        }
        assert_eq!(whole.templates(), second.templates());
        assert!(Drain::import_state(b"junk").is_err());
    }

    #[test]
    fn bad_parameters_are_refused_with_the_reason() {
        let bad = |c: Config| Drain::new(c).err().unwrap();
        assert!(bad(Config { depth: 2, ..Config::default() }).contains("depth"));
        assert!(bad(Config { similarity: 1.5, ..Config::default() }).contains("similarity"));
        let masks = vec![Mask { name: "X".into(), pattern: "(".into() }];
        assert!(bad(Config { masks, ..Config::default() }).contains("mask X"));
    }
}
