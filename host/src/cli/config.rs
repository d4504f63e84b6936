//! Settings below the command line: a TOML file and `SG_…` environment variables, both turned
//! into arguments placed before the command line's own, so one parser checks everything and
//! the precedence is the same for every flag: command line > environment > file > default.
//!
//! The file is `--config FILE`, else `$SG_CONFIG`, else the first that exists of
//! `./sg-host.toml`, `$XDG_CONFIG_HOME/sg-host/config.toml` (`~/.config/…`) and
//! `/etc/sg-host/config.toml`. Its keys are the long flags (`group = "soc"`, `follow = true`,
//! `alert-webhook = ["https://…"]`), at the top (for every command that has the flag) or in a
//! table named for the command (`[run]`, `[dedup]`); `[kafka]` (and `[run.kafka]`…) holds
//! librdkafka properties. A flag `--some-flag` is also read from `SG_SOME_FLAG`, and a
//! librdkafka property `sasl.password` from `SG_RDKAFKA_SASL_PASSWORD`. Kafka properties add
//! up: the `--kafka-config` file, then the file's `[kafka]`, then `SG_RDKAFKA_…`, then `-X`,
//! the later winning for the same key.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Arg, ArgAction, Command};

/// Where an argument's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// The command line.
    Flag,
    /// This environment variable.
    Env(String),
    /// The config file.
    File,
}

/// The command line with the file's and the environment's arguments put in.
pub(super) struct Layered {
    /// Arguments to parse.
    pub argv: Vec<OsString>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// Per argument id, where its value came from (absent: its default).
    pub origins: BTreeMap<String, Origin>,
    /// What to warn about once the log is set up (a secret given on the command line).
    pub warnings: Vec<String>,
}

/// The arg id of `-X KEY=VALUE`, whose values add up instead of replacing each other.
const PROPERTY_ID: &str = "property";

/// Environment prefix of librdkafka properties: `SG_RDKAFKA_SASL_PASSWORD` → `sasl.password`.
pub(super) const RDKAFKA_ENV: &str = "SG_RDKAFKA_";

/// The global flags that take a value, which can stand before the subcommand.
const GLOBAL_VALUED: [&str; 3] = ["--config", "--log", "--log-format"];

/// Layers the config file and the environment under `argv` (which starts with the program).
pub(super) fn layer(root: &Command, argv: Vec<OsString>, env: &dyn Fn(&str) -> Option<String>) -> Result<Layered> {
    let strings: Vec<String> = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let file = config_path(&strings, env)?;
    let table = match &file {
        Some(path) => read_table(path)?,
        None => toml::Table::new(),
    };
    let Some((at, sub)) = find_subcommand(root, &strings) else {
        check_keys(root, &table, file.as_deref())?;
        return Ok(Layered { argv, file, origins: BTreeMap::new(), warnings: Vec::new() });
    };
    check_keys(root, &table, file.as_deref())?;
    let given = &strings[at + 1..];
    let section = table.get(sub.get_name()).and_then(|v| v.as_table());
    let mut injected: Vec<OsString> = Vec::new();
    let mut origins = BTreeMap::new();
    let user_gave = |arg: &Arg| gives(given, arg);
    for arg in sub.get_arguments().filter(|a| a.get_long().is_some() || a.get_short().is_some()) {
        let id = arg.get_id().as_str();
        if id == PROPERTY_ID {
            continue; // below: properties add up
        }
        if user_gave(arg) {
            origins.insert(id.to_string(), Origin::Flag);
            continue;
        }
        let conflicts = |other: &Arg| {
            sub.get_arg_conflicts_with(arg).iter().any(|a| a.get_id() == other.get_id())
                || sub.get_arg_conflicts_with(other).iter().any(|a| a.get_id() == arg.get_id())
        };
        if sub.get_arguments().filter(|a| user_gave(a)).any(conflicts) {
            continue; // the command line chose the other side of a conflict
        }
        let Some(long) = arg.get_long() else { continue };
        let var = format!("SG_{}", long.replace('-', "_").to_uppercase());
        if let Some(value) = env(&var) {
            injected.extend(tokens_from_env(arg, long, &var, &value)?);
            origins.insert(id.to_string(), Origin::Env(var));
        } else if let Some(value) = lookup(section, &table, long) {
            let path = file.as_deref().expect("a value came from the file");
            injected.extend(tokens_from_toml(arg, long, value).with_context(|| format!("{}: {long}", path.display()))?);
            origins.insert(id.to_string(), Origin::File);
        }
    }
    if sub.get_arguments().any(|a| a.get_id() == PROPERTY_ID) {
        for kafka in [table.get("kafka"), section.and_then(|s| s.get("kafka"))].into_iter().flatten() {
            let kafka = kafka.as_table().context("[kafka] holds librdkafka properties: key = value")?;
            for (key, value) in kafka {
                injected.push("-X".into());
                injected.push(format!("{key}={}", scalar(value).with_context(|| format!("[kafka] {key}"))?).into());
            }
        }
        for (var, value) in env_properties(env) {
            injected.push("-X".into());
            injected.push(format!("{}={value}", property_of_env(&var)).into());
        }
    }
    let warnings = given
        .windows(2)
        .filter_map(|w| if w[0] == "-X" { Some(w[1].as_str()) } else { w[0].strip_prefix("-X") })
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.trim()))
        .filter(|k| is_secret(k))
        .map(|k| {
            let var = format!("{RDKAFKA_ENV}{}", k.replace('.', "_").to_uppercase());
            format!("-X {k}=… on the command line, where every user's `ps` shows it: use --kafka-config FILE or {var}")
        })
        .collect();
    let mut layered: Vec<OsString> = argv[..=at].to_vec();
    layered.extend(injected);
    layered.extend(argv[at + 1..].iter().cloned());
    Ok(Layered { argv: layered, file, origins, warnings })
}

/// The librdkafka property an `SG_RDKAFKA_…` variable sets: `SASL_PASSWORD` → `sasl.password`.
pub(super) fn property_of_env(var: &str) -> String {
    var.trim_start_matches(RDKAFKA_ENV).to_lowercase().replace('_', ".")
}

/// Every `SG_RDKAFKA_…` variable set, in name order.
fn env_properties(env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut vars: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with(RDKAFKA_ENV) && k.len() > RDKAFKA_ENV.len())
        .collect();
    vars.sort();
    vars.into_iter().filter_map(|k| env(&k).map(|v| (k, v))).collect()
}

/// The config file to read: `--config`, `$SG_CONFIG`, or the first of the search path.
fn config_path(argv: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Option<PathBuf>> {
    let named = argv.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--config") {
        Some("") => argv.get(i + 1).cloned(),
        Some(v) if v.starts_with('=') => Some(v[1..].to_string()),
        _ => None,
    });
    if let Some(path) = named.or_else(|| env("SG_CONFIG")) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("config file {} does not exist", path.display());
        }
        return Ok(Some(path));
    }
    let xdg = env("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")));
    let candidates =
        [Some(PathBuf::from("sg-host.toml")), xdg.map(|d| d.join("sg-host/config.toml")), Some(PathBuf::from("/etc/sg-host/config.toml"))];
    Ok(candidates.into_iter().flatten().find(|p| p.is_file()))
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    text.parse::<toml::Table>().with_context(|| format!("config file {}", path.display()))
}

/// Where the subcommand stands in `argv`, skipping the global flags before it.
fn find_subcommand<'a>(root: &'a Command, argv: &[String]) -> Option<(usize, &'a Command)> {
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if GLOBAL_VALUED.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if a.starts_with('-') {
            i += 1;
            continue;
        }
        return root.find_subcommand(a).map(|s| (i, s));
    }
    None
}

/// Whether `given` (the tokens after the subcommand) sets `arg`.
fn gives(given: &[String], arg: &Arg) -> bool {
    given.iter().take_while(|t| *t != "--").any(|t| {
        let long = arg.get_long().is_some_and(|l| t.strip_prefix("--").is_some_and(|r| r == l || r.starts_with(&format!("{l}="))));
        let short = arg.get_short().is_some_and(|s| t.len() >= 2 && !t.starts_with("--") && t.starts_with('-') && t[1..].starts_with(s));
        long || short
    })
}

/// The file's value of `long`: the command's table first, then the top level; `snake_case`
/// keys are read as `kebab-case`.
fn lookup<'a>(section: Option<&'a toml::Table>, top: &'a toml::Table, long: &str) -> Option<&'a toml::Value> {
    let snake = long.replace('-', "_");
    let find = |t: &'a toml::Table| t.get(long).or_else(|| t.get(&snake)).filter(|v| !v.is_table());
    section.and_then(find).or_else(|| find(top))
}

/// A scalar as the text a flag takes.
fn scalar(value: &toml::Value) -> Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        other => bail!("expected a string, number or boolean, not {}", other.type_str()),
    })
}

fn takes_values(arg: &Arg) -> bool {
    !matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count)
}

fn tokens_from_toml(arg: &Arg, long: &str, value: &toml::Value) -> Result<Vec<OsString>> {
    if !takes_values(arg) {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![format!("--{long}").into()]),
            toml::Value::Boolean(false) => Ok(vec![]),
            other => bail!("a switch: expected true or false, not {}", other.type_str()),
        };
    }
    let values = match value {
        toml::Value::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
            items.iter().map(scalar).collect::<Result<Vec<_>>>()?
        }
        toml::Value::Array(_) => bail!("takes one value, not a list"),
        v => vec![scalar(v)?],
    };
    Ok(values.into_iter().map(|v| format!("--{long}={v}").into()).collect())
}

fn tokens_from_env(arg: &Arg, long: &str, var: &str, value: &str) -> Result<Vec<OsString>> {
    if takes_values(arg) {
        return Ok(vec![format!("--{long}={value}").into()]);
    }
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(vec![format!("--{long}").into()]),
        "0" | "false" | "no" | "off" | "" => Ok(vec![]),
        other => bail!("{var}={other}: --{long} is a switch; expected true or false"),
    }
}

/// Refuses keys no command takes, so a typo is an error rather than a setting silently unused.
fn check_keys(root: &Command, table: &toml::Table, file: Option<&Path>) -> Result<()> {
    let Some(file) = file else { return Ok(()) };
    let longs = |c: &Command| -> Vec<String> { c.get_arguments().filter_map(|a| a.get_long()).map(str::to_string).collect() };
    let all: Vec<String> = root.get_subcommands().flat_map(longs).collect();
    let known = |names: &[String], key: &str| names.iter().any(|l| l == key || l.replace('-', "_") == key);
    for (key, value) in table {
        if key == "kafka" {
            continue;
        }
        if let Some(sub) = root.find_subcommand(key).filter(|_| value.is_table()) {
            let own = longs(sub);
            for inner in value.as_table().expect("a table").keys() {
                if inner != "kafka" && !known(&own, inner) {
                    bail!("config file {}: [{key}] {inner}: `sg-host {key}` has no --{inner}", file.display());
                }
            }
        } else if !known(&all, key) {
            bail!("config file {}: {key}: no command has --{key}", file.display());
        }
    }
    Ok(())
}

/// Reads a librdkafka properties file (`key=value` lines, `#` comments, blank lines).
pub(super) fn read_properties(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading Kafka properties {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o004 != 0 && text.lines().any(|l| l.split_once('=').is_some_and(|(k, _)| is_secret(k.trim()))) {
            tracing::warn!(file = %path.display(), "holds a secret and every user can read it (chmod 600)");
        }
    }
    let mut properties = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').with_context(|| format!("{}:{}: expected key=value", path.display(), n + 1))?;
        properties.push((k.trim().to_string(), v.trim_end_matches(['\r', '\n']).to_string()));
    }
    Ok(properties)
}

/// Whether a setting or librdkafka property holds a secret, by its name: its value is shown
/// as `********` and never logged.
pub(super) fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "ssl.key.pem", "sasl.oauthbearer.config", "credential"]
        .iter()
        .any(|s| name.contains(s))
        && !name.ends_with("-file")
        && !name.ends_with(".location")
}

/// The effective settings of the command in `layered` (each with where it came from, secrets
/// masked) and the librdkafka properties in force, as `sg-host config show` prints them.
pub(super) fn show(root: &Command, layered: &Layered) -> Result<String> {
    use std::fmt::Write as _;
    let matches = root.clone().try_get_matches_from(&layered.argv)?;
    let Some((name, m)) = matches.subcommand() else { bail!("config show COMMAND [ARGS…]: no command given") };
    let sub = root.find_subcommand(name).expect("parsed");
    let mut out = String::new();
    match &layered.file {
        Some(f) => writeln!(out, "# config file: {}", f.display())?,
        None => writeln!(out, "# config file: none")?,
    }
    writeln!(out, "[{name}]")?;
    let mut properties = Vec::new();
    for arg in sub.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(raw) = m.get_raw(id) else { continue };
        let values: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
        if id == PROPERTY_ID {
            properties.extend(values.iter().filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))));
            continue;
        }
        if id == "kafka_config" {
            let mut from_file = read_properties(Path::new(&values[0]))?;
            from_file.append(&mut properties);
            properties = from_file;
        }
        let origin = match layered.origins.get(id) {
            Some(Origin::Flag) => "command line".to_string(),
            Some(Origin::Env(var)) => format!("environment {var}"),
            Some(Origin::File) => "config file".to_string(),
            None => "default".to_string(),
        };
        let key = arg.get_long().map(str::to_string).unwrap_or_else(|| id.to_string());
        let shown: Vec<String> = values.iter().map(|v| format!("{:?}", shown(&key, v))).collect();
        let value = if shown.len() == 1 { shown[0].clone() } else { format!("[{}]", shown.join(", ")) };
        writeln!(out, "{key} = {value}  # {origin}")?;
    }
    if !properties.is_empty() {
        let mut effective = BTreeMap::new();
        for (k, v) in properties {
            effective.insert(k, v); // the later wins, as in the client
        }
        writeln!(out, "[{name}.kafka]")?;
        for (k, v) in effective {
            writeln!(out, "{k:?} = {:?}", shown(&k, &v))?;
        }
    }
    Ok(out)
}

/// `value`, or a mask when `name` is a secret.
pub(super) fn shown(name: &str, value: &str) -> String {
    if is_secret(name) { "********".into() } else { value.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn layered(file: &str, env: &[(&str, &str)], argv: &[&str]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, file).unwrap();
        let mut full = vec!["sg-host".to_string(), "--config".into(), path.display().to_string()];
        full.extend(argv.iter().map(|s| s.to_string()));
        let env: BTreeMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = |k: &str| env.get(k).cloned();
        let l = layer(&crate::cli::Cli::command(), full.into_iter().map(OsString::from).collect(), &lookup).unwrap();
        l.argv.into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    #[test]
    fn the_command_line_beats_the_environment_which_beats_the_file() {
        let file = "group = \"from-file\"\n[run]\nbatch-events = 100\nfollow = true\n[kafka]\n\"client.id\" = \"f\"\n";
        let argv = layered(file, &[], &["run", "--out", "o"]);
        assert!(argv.contains(&"--group=from-file".into()) && argv.contains(&"--batch-events=100".into()), "{argv:?}");
        assert!(argv.contains(&"--follow".into()) && argv.contains(&"client.id=f".into()), "{argv:?}");
        let argv = layered(file, &[("SG_GROUP", "from-env"), ("SG_FOLLOW", "false")], &["run", "--out", "o"]);
        assert!(argv.contains(&"--group=from-env".into()) && !argv.iter().any(|a| a.contains("from-file")), "{argv:?}");
        assert!(!argv.contains(&"--follow".into()), "{argv:?}");
        let argv = layered(file, &[("SG_GROUP", "from-env")], &["run", "--group", "flag", "--out", "o"]);
        assert!(!argv.iter().any(|a| a.contains("from-")), "{argv:?}");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let none = |_: &str| None;
        for (text, want) in [("gruop = 1", "gruop"), ("[run]\nport = 1", "port"), ("[run]\nfollow = 3", "switch")] {
            std::fs::write(&path, text).unwrap();
            let argv = ["sg-host", "--config", path.to_str().unwrap(), "run"].map(OsString::from).to_vec();
            let e = layer(&crate::cli::Cli::command(), argv, &none).err().expect(text);
            assert!(format!("{e:#}").contains(want), "{text}: {e:#}");
        }
    }

    #[test]
    fn secrets_are_masked_by_name() {
        assert_eq!(shown("sasl.password", "hunter2"), "********");
        assert_eq!(shown("ssl.key.password", "x"), "********");
        assert_eq!(shown("admin-token-file", "/etc/t"), "/etc/t");
        assert_eq!(shown("ssl.ca.location", "/ca.pem"), "/ca.pem");
        assert_eq!(property_of_env("SG_RDKAFKA_SASL_PASSWORD"), "sasl.password");
    }
}
