//! Typed instructions from the line AST (buildkit's `instructions/parse.go` rules), their
//! variable expansion with a stage's environment ([`Instruction::expand`]), and a stable text
//! dump for fixtures ([`dump`]).
//!
//! Expansion happens where Docker does it: ADD, COPY (sources, dest, `--chown`, `--chmod`),
//! ENV and LABEL (keys and values), EXPOSE, FROM (with the global ARGs, in [`crate::stages`]),
//! STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults and RUN `--mount` values. RUN, CMD,
//! ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER and ONBUILD are left alone (the shell, or the
//! child build for ONBUILD, does it).

use crate::parser::{self, Ast, Heredoc, Node};
use crate::shell::{expand_heredoc, process_word, process_words, split_raw, Lookup};
use crate::BuildError;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A command in shell form (run with the stage's SHELL) or exec (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

impl Command {
    /// The argv to run, given the stage's shell (`["/bin/sh", "-c"]` by default).
    pub fn argv(&self, shell: &[String]) -> Vec<String> {
        match self {
            Command::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
            Command::Exec(v) => v.clone(),
        }
    }
}

/// `FROM [--platform=…] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The image reference as written (`${BASE}:1`), `scratch`, or an earlier stage's name.
    pub image: String,
    /// The lower-cased `AS` name.
    pub name: Option<String>,
    pub platform: Option<String>,
}

/// `RUN --network=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Default,
    None,
    Host,
}

/// `RUN --security=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

/// `RUN --mount=type=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

/// `--mount=type=cache,sharing=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `RUN --mount=…` (buildkit's field set; what each type uses is in its doc).
///
/// - bind: `target`, `source` (default: the root of `from`), `from` (stage, image or the
///   context when unset), `readonly` (default true; `rw` clears it).
/// - cache: `target`, `id` (default: `target`), `sharing` (default shared), `from`/`source`
///   (seed), `mode` (default 0755), `uid`/`gid` (default 0), `readonly` (default false).
/// - tmpfs: `target`, `size` (bytes).
/// - secret: `id` (default: basename of `target`), `target` (default `/run/secrets/<id>`),
///   `required`, `mode` (default 0400), `uid`/`gid`.
/// - ssh: `id` (default `default`), `target`, `required`, `mode` (default 0600), `uid`/`gid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub readonly: bool,
    pub id: Option<String>,
    pub sharing: Option<Sharing>,
    pub required: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
}

impl Mount {
    /// The cache id (cache mounts): `id`, else the target.
    pub fn cache_id(&self) -> String {
        self.id
            .clone()
            .or_else(|| self.target.clone())
            .unwrap_or_default()
    }

    /// The secret id (secret mounts): `id`, else the basename of the target.
    pub fn secret_id(&self) -> String {
        match (&self.id, &self.target) {
            (Some(id), _) => id.clone(),
            (None, Some(t)) => t.rsplit('/').next().unwrap_or_default().to_string(),
            (None, None) => String::new(),
        }
    }

    /// Where the mount appears: `target`, or the secret/ssh default location.
    pub fn target_path(&self) -> String {
        match (&self.target, self.kind) {
            (Some(t), _) => t.clone(),
            (None, MountType::Secret) => format!("/run/secrets/{}", self.secret_id()),
            (None, MountType::Ssh) => "/run/buildkit/ssh_agent.0".to_string(),
            (None, _) => String::new(),
        }
    }
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command as written: exec form, or the shell-form text (for `RUN <<EOF` the marker
    /// line; use [`Run::script`] for what to execute).
    pub cmd: Command,
    pub heredocs: Vec<Heredoc>,
    pub mounts: Vec<Mount>,
    /// `--mount` values as written, re-parsed with the stage's variables by `expand`.
    pub mount_specs: Vec<String>,
    pub network: Option<Network>,
    pub security: Option<Security>,
}

/// What a RUN executes, after heredocs are taken into account (buildkit's rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// Run as is (exec form, or shell form with the stage's SHELL).
    Command(Command),
    /// `RUN <<EOF` whose body starts with `#!`: write `body` to an executable file named
    /// `name` (buildkit mounts it under `/dev/pipes/`) and execute that file.
    File { name: String, body: String },
}

impl Run {
    /// What to execute: a lone `RUN <<EOF` runs its body with the shell (or as an executable
    /// file when it starts with `#!`); `RUN cmd <<EOF …` hands the shell the command line
    /// followed by each heredoc and its delimiter, so the shell itself feeds them.
    pub fn script(&self) -> Script {
        let Command::Shell(line) = &self.cmd else {
            return Script::Command(self.cmd.clone());
        };
        let Some(first) = self.heredocs.first() else {
            return Script::Command(self.cmd.clone());
        };
        if parser::parse_heredoc_marker(line.trim()).is_some() {
            let body = first.data();
            if body.starts_with("#!") {
                return Script::File {
                    name: first.name.clone(),
                    body,
                };
            }
            return Script::Command(Command::Shell(body));
        }
        let mut full = line.clone();
        for h in &self.heredocs {
            full.push('\n');
            full.push_str(&h.content);
            full.push_str(&h.name);
        }
        Script::Command(Command::Shell(full))
    }
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    /// Source paths, globs or (ADD) URLs and git references, heredoc markers removed.
    pub sources: Vec<String>,
    /// Heredoc sources: files named after the delimiter, with its content.
    pub inline: Vec<Heredoc>,
    pub dest: String,
    /// `--from=<stage name|stage index|image>` (COPY only).
    pub from: Option<String>,
    pub chown: Option<String>,
    /// `--chmod` as written (octal when it has no variables).
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// `ADD --checksum=…`.
    pub checksum: Option<String>,
    /// `ADD --keep-git-dir`.
    pub keep_git_dir: bool,
    /// Sources and dest were given as a JSON array.
    pub json: bool,
}

impl Copy {
    /// Whether an ADD source is a remote URL (fetched rather than read from the context).
    pub fn is_url(src: &str) -> bool {
        let s = src.to_ascii_lowercase();
        s.starts_with("http://") || s.starts_with("https://")
    }

    /// Whether an ADD source is a git repository reference.
    pub fn is_git(src: &str) -> bool {
        let s = src.to_ascii_lowercase();
        s.starts_with("git://")
            || s.starts_with("git@")
            || ((s.starts_with("http://") || s.starts_with("https://"))
                && (s.contains(".git#") || s.ends_with(".git")))
    }
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// `HEALTHCHECK NONE`: disable any inherited check (`Test: ["NONE"]`).
    None,
    Check {
        /// `["CMD", …]` or `["CMD-SHELL", "…"]`, as in the image config.
        test: Vec<String>,
        /// Unset (or zero) durations inherit the default.
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// `ARG NAME[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// One Dockerfile instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From(From),
    Run(Run),
    Cmd(Command),
    Entrypoint(Command),
    /// `(key, value)` pairs, raw until expanded (quotes kept).
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Copy(Copy),
    Add(Copy),
    Workdir(String),
    User(String),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    Shell(Vec<String>),
    /// The trigger as written (stored in the image's `OnBuild`) and its parsed form.
    Onbuild {
        expression: String,
        trigger: Box<Instruction>,
    },
    Maintainer(String),
}

impl Instruction {
    /// The upper-case keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Label(_) => "LABEL",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            Instruction::Volume(_) => "VOLUME",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
            Instruction::Onbuild { .. } => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub inst: Instruction,
    /// First and last line (1-based).
    pub line: usize,
    pub end_line: usize,
    /// The instruction as written on one line, for `Step N/M : …` and history.
    pub text: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Str,
    Strs,
}

/// Parsed `--flags` of one instruction.
#[derive(Default)]
struct Flags {
    vals: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    fn parse(node: &Node, spec: &[(&'static str, Kind)]) -> Result<Flags, String> {
        let mut out = Flags::default();
        for f in &node.flags {
            let body = f.strip_prefix("--").unwrap_or(f);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(key, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                return Err(format!("unknown flag: {name}"));
            };
            if out.vals.contains_key(key) && kind != Kind::Strs {
                return Err(format!("duplicate flag specified: {name}"));
            }
            let v = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some("")) => return Err(format!("missing a value on flag: {name}")),
                (Kind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".to_string(),
                    "false" => "false".to_string(),
                    _ => return Err(format!("expecting boolean value for flag {name}, not: {v}")),
                },
                (_, None) => return Err(format!("missing a value on flag: {name}")),
                (_, Some(v)) => v.to_string(),
            };
            out.vals.entry(key).or_default().push(v);
        }
        Ok(out)
    }

    fn str(&self, k: &str) -> Option<String> {
        self.vals.get(k).and_then(|v| v.last().cloned())
    }

    fn bool(&self, k: &str) -> bool {
        self.str(k).as_deref() == Some("true")
    }

    fn strs(&self, k: &str) -> Vec<String> {
        self.vals.get(k).cloned().unwrap_or_default()
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn command(node: &Node) -> Command {
    match &node.json {
        Some(v) => Command::Exec(v.clone()),
        None => Command::Shell(node.args.clone()),
    }
}

/// `K=V K2=V2` or the legacy `K V with spaces` (ENV and LABEL).
fn name_vals(args: &str, kw: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let ws = split_raw(args, escape);
    if ws.is_empty() {
        return Err(format!("{kw} requires at least one argument"));
    }
    if !ws[0].contains('=') {
        let t = args.trim();
        let Some((k, v)) = t.split_once(char::is_whitespace) else {
            return Err(format!("{kw} must have two arguments"));
        };
        return Ok(vec![(k.to_string(), v.trim_start().to_string())]);
    }
    let mut out = Vec::new();
    for w in ws {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        if k.is_empty() {
            return Err(format!("{kw} names can not be blank"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid value for {key}: {v}")),
    }
}

/// A size like `64m` or `1g` (bytes, binary units as Docker's `RAMInBytes`).
fn parse_size(v: &str) -> Option<u64> {
    let t = v.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

/// Parses one `--mount` value; `expand` substitutes variables in each value.
pub fn parse_mount(
    spec: &str,
    expand: &dyn Fn(&str) -> Result<String, BuildError>,
) -> Result<Mount, BuildError> {
    let inv = |m: String| BuildError::Invalid(m);
    let mut m = Mount {
        kind: MountType::Bind,
        target: None,
        source: None,
        from: None,
        readonly: false,
        id: None,
        sharing: None,
        required: false,
        mode: None,
        uid: None,
        gid: None,
        size: None,
    };
    let mut ro_auto = true;
    let kind_name = |k: MountType| format!("{k:?}").to_ascii_lowercase();
    for field in csv_fields(spec) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true
                }
                "required" => {
                    return Err(inv(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        kind_name(m.kind)
                    )))
                }
                _ => {
                    return Err(inv(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )))
                }
            }
            continue;
        };
        if key == "from" && value.contains('$') {
            return Err(inv(format!(
                "'{key}' doesn't support variable expansion, define alias stage instead"
            )));
        }
        let value = expand(value)?;
        let num = |what: &str, radix: u32| {
            u32::from_str_radix(&value, radix)
                .map_err(|_| inv(format!("invalid value {value} for {what}")))
        };
        match key.as_str() {
            "type" => {
                m.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => return Err(inv(format!("unsupported mount type {value:?}"))),
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.readonly = parse_bool(&key, &value).map_err(inv)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&key, &value).map_err(inv)?;
                ro_auto = false;
            }
            "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                m.required = parse_bool(&key, &value).map_err(inv)?
            }
            "size" if m.kind == MountType::Tmpfs => {
                m.size = Some(
                    parse_size(&value)
                        .ok_or_else(|| inv(format!("invalid value for {key}: {value}")))?,
                )
            }
            "required" | "size" => {
                return Err(inv(format!(
                    "unexpected key '{key}' for mount type '{}'",
                    kind_name(m.kind)
                )))
            }
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => return Err(inv(format!("unsupported sharing value {value:?}"))),
                })
            }
            "mode" => m.mode = Some(num("mode", 8)?),
            "uid" => m.uid = Some(num("uid", 10)?),
            "gid" => m.gid = Some(num("gid", 10)?),
            _ => return Err(inv(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    let file_info = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info {
        for (what, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(inv(format!(
                    "{what} not allowed for {:?} type mounts",
                    kind_name(m.kind)
                )));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err(inv("secret mount should not have a from".into()));
        }
        if m.sharing.is_some() {
            return Err(inv("secret mount should not define sharing".into()));
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err(inv(
                "invalid secret mount. one of source, target required".into()
            ));
        }
        if m.source.is_some() && m.id.is_some() {
            return Err(inv("both source and id can't be set".into()));
        }
        // `source=` on a secret names it, as `id=` does.
        if m.id.is_none() {
            m.id = m.source.take();
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(inv(format!(
            "invalid cache sharing set for {} mount",
            kind_name(m.kind)
        )));
    }
    if matches!(
        m.kind,
        MountType::Bind | MountType::Cache | MountType::Tmpfs
    ) && m.target.as_deref().unwrap_or("").is_empty()
    {
        return Err(inv(format!(
            "mount type={} requires a target",
            kind_name(m.kind)
        )));
    }
    Ok(m)
}

/// One CSV record (as Go's `encoding/csv` reads `--mount` values): `"…"` fields may hold
/// commas, `""` is a quote inside them.
fn csv_fields(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if cur.is_empty() => quoted = true,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.retain(|f| !f.is_empty());
    out
}

/// A Go duration (`1m30s`, `500ms`, `2h`), as HEALTHCHECK flags take.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let t = s.strip_prefix('+').unwrap_or(s);
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.starts_with('-') {
        return Err("negative".into());
    }
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[u_end..];
        total += n * unit;
    }
    Ok(Duration::from_secs_f64(total))
}

fn health(node: &Node) -> Result<Instruction, String> {
    let f = Flags::parse(
        node,
        &[
            ("interval", Kind::Str),
            ("timeout", Kind::Str),
            ("start-period", Kind::Str),
            ("start-interval", Kind::Str),
            ("retries", Kind::Str),
        ],
    )?;
    let args = node.args.trim();
    if args.is_empty() {
        return Err("HEALTHCHECK requires at least one argument".into());
    }
    let (typ, rest) = match args.split_once(char::is_whitespace) {
        Some((t, r)) => (t, r.trim_start()),
        None => (args, ""),
    };
    match typ.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !rest.is_empty() {
                return Err("HEALTHCHECK NONE takes no arguments".into());
            }
            Ok(Instruction::Healthcheck(Health::None))
        }
        "CMD" => {
            let test = match parser::json_array(rest)? {
                Some(v) if v.is_empty() => Vec::new(),
                Some(v) => [vec!["CMD".to_string()], v].concat(),
                None if rest.is_empty() => Vec::new(),
                None => vec!["CMD-SHELL".to_string(), rest.to_string()],
            };
            if test.is_empty() {
                return Err("Missing command after HEALTHCHECK CMD".into());
            }
            let dur = |name: &str| -> Result<Option<Duration>, String> {
                let Some(v) = f.str(name) else {
                    return Ok(None);
                };
                if v.is_empty() {
                    return Ok(None);
                }
                let d = parse_duration(&v).map_err(|e| {
                    if e == "negative" {
                        format!("Interval {name:?} cannot be negative")
                    } else {
                        e
                    }
                })?;
                if d.is_zero() {
                    return Ok(None);
                }
                if d < Duration::from_millis(1) {
                    return Err(format!("Interval {name:?} cannot be less than 1ms"));
                }
                Ok(Some(d))
            };
            let retries = match f.str("retries") {
                None => None,
                Some(r) => {
                    let n: i64 = r
                        .parse()
                        .map_err(|_| format!("strconv.ParseInt: parsing {r:?}: invalid syntax"))?;
                    if n < 0 {
                        return Err(format!("--retries cannot be negative ({n})"));
                    }
                    (n > 0).then_some(n as u32)
                }
            };
            Ok(Instruction::Healthcheck(Health::Check {
                test,
                interval: dur("interval")?,
                timeout: dur("timeout")?,
                start_period: dur("start-period")?,
                start_interval: dur("start-interval")?,
                retries,
            }))
        }
        other => Err(format!("Unknown type \"{other}\" in HEALTHCHECK (try CMD)")),
    }
}

fn copy(node: &Node, add: bool) -> Result<Copy, String> {
    let spec: &[(&'static str, Kind)] = if add {
        &[
            ("chown", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("checksum", Kind::Str),
            ("keep-git-dir", Kind::Bool),
            ("exclude", Kind::Strs),
            ("unpack", Kind::Bool),
        ]
    } else {
        &[
            ("from", Kind::Str),
            ("chown", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("parents", Kind::Bool),
            ("exclude", Kind::Strs),
        ]
    };
    let f = Flags::parse(node, spec)?;
    let mut all = match &node.json {
        Some(v) => v.clone(),
        None => words(&node.args),
    };
    let kw = node.keyword.as_str();
    if all.len() < 2 && node.heredocs.is_empty() || all.is_empty() {
        return Err(if all.is_empty() {
            format!("{kw} requires at least two arguments")
        } else {
            format!("{kw} requires at least two arguments, but only one was provided. Destination could not be determined")
        });
    }
    let dest = all.pop().unwrap_or_default();
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for s in all {
        match parser::parse_heredoc_marker(&s) {
            Some(h) if node.json.is_none() => {
                if let Some(doc) = node.heredocs.iter().find(|d| d.name == h.name) {
                    inline.push(doc.clone());
                }
            }
            _ => sources.push(s),
        }
    }
    if sources.is_empty() && inline.is_empty() {
        return Err(format!("{kw} requires at least two arguments, but only one was provided. Destination could not be determined"));
    }
    let chmod = f.str("chmod");
    if let Some(m) = &chmod {
        if !m.contains('$') && u32::from_str_radix(m, 8).is_err() {
            return Err(format!("invalid chmod parameter: {m}"));
        }
    }
    Ok(Copy {
        sources,
        inline,
        dest,
        from: f.str("from"),
        chown: f.str("chown"),
        chmod,
        link: f.bool("link"),
        parents: f.bool("parents"),
        exclude: f.strs("exclude"),
        checksum: f.str("checksum"),
        keep_git_dir: f.bool("keep-git-dir"),
        json: node.json.is_some(),
    })
}

fn exactly_one(node: &Node) -> Result<String, String> {
    Flags::parse(node, &[])?;
    let a = node.args.trim();
    if a.is_empty() {
        return Err(format!("{} requires exactly one argument", node.keyword));
    }
    Ok(a.to_string())
}

fn typed(node: &Node, escape: char) -> Result<Instruction, String> {
    let kw = node.keyword.as_str();
    let args = node.args.trim();
    let none = || Flags::parse(node, &[]).map(|_| ());
    let at_least_one = || {
        if args.is_empty() {
            Err(format!("{kw} requires at least one argument"))
        } else {
            Ok(())
        }
    };
    Ok(match kw {
        "FROM" => {
            let f = Flags::parse(node, &[("platform", Kind::Str)])?;
            let w = words(args);
            let name = match w.as_slice() {
                [_] => None,
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let lower = name.to_ascii_lowercase();
                    let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                        && lower
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                    if !valid {
                        return Err(format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols"));
                    }
                    Some(lower)
                }
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            Instruction::From(From {
                image: w[0].clone(),
                name,
                platform: f.str("platform"),
            })
        }
        "RUN" => {
            let f = Flags::parse(
                node,
                &[
                    ("mount", Kind::Strs),
                    ("network", Kind::Str),
                    ("security", Kind::Str),
                ],
            )?;
            let mount_specs = f.strs("mount");
            let mut mounts = Vec::new();
            for s in &mount_specs {
                mounts.push(parse_mount(s, &|v| Ok(v.to_string())).map_err(|e| e.to_string())?);
            }
            let network = match f.str("network").as_deref() {
                None => None,
                Some("default") => Some(Network::Default),
                Some("none") => Some(Network::None),
                Some("host") => Some(Network::Host),
                Some(o) => return Err(format!("unsupported network mode {o:?}")),
            };
            let security = match f.str("security").as_deref() {
                None => None,
                Some("sandbox") => Some(Security::Sandbox),
                Some("insecure") => Some(Security::Insecure),
                Some(o) => return Err(format!("unsupported security mode {o:?}")),
            };
            Instruction::Run(Run {
                cmd: command(node),
                heredocs: node.heredocs.clone(),
                mounts,
                mount_specs,
                network,
                security,
            })
        }
        "CMD" => {
            none()?;
            Instruction::Cmd(command(node))
        }
        "ENTRYPOINT" => {
            none()?;
            Instruction::Entrypoint(command(node))
        }
        "ENV" => {
            none()?;
            at_least_one()?;
            Instruction::Env(name_vals(args, kw, escape)?)
        }
        "LABEL" => {
            none()?;
            at_least_one()?;
            Instruction::Label(name_vals(args, kw, escape)?)
        }
        "ARG" => {
            none()?;
            at_least_one()?;
            let mut out = Vec::new();
            for w in split_raw(args, escape) {
                let (name, default) = match w.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (w, None),
                };
                if name.is_empty() {
                    return Err("ARG names can not be blank".into());
                }
                out.push(ArgDecl { name, default });
            }
            Instruction::Arg(out)
        }
        "EXPOSE" => {
            none()?;
            at_least_one()?;
            Instruction::Expose(words(args))
        }
        "COPY" => Instruction::Copy(copy(node, false)?),
        "ADD" => Instruction::Add(copy(node, true)?),
        "WORKDIR" => Instruction::Workdir(exactly_one(node)?),
        "USER" => Instruction::User(exactly_one(node)?),
        "STOPSIGNAL" => Instruction::StopSignal(exactly_one(node)?),
        "MAINTAINER" => Instruction::Maintainer(exactly_one(node)?),
        "VOLUME" => {
            none()?;
            let v = node.json.clone().unwrap_or_else(|| words(args));
            if v.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            if v.iter().any(|p| p.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Instruction::Volume(v)
        }
        "HEALTHCHECK" => health(node)?,
        "SHELL" => {
            none()?;
            let Some(v) = node.json.clone() else {
                return Err("SHELL requires the arguments to be in JSON form".into());
            };
            if v.is_empty() {
                return Err("SHELL requires at least one argument".into());
            }
            Instruction::Shell(v)
        }
        "ONBUILD" => {
            none()?;
            at_least_one()?;
            let inner_kw = args
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match inner_kw.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "FROM" | "MAINTAINER" => {
                    return Err(format!("{inner_kw} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            let trigger = parse_trigger(args, escape)?;
            Instruction::Onbuild {
                expression: args.to_string(),
                trigger: Box::new(trigger),
            }
        }
        other => return Err(format!("unknown instruction: {other}")),
    })
}

/// Parses an ONBUILD trigger expression (`RUN make`) into its instruction, as the child
/// build does when it inherits the trigger. Heredocs are not available in triggers.
pub fn parse_trigger(expression: &str, escape: char) -> Result<Instruction, String> {
    let t = expression.trim();
    let (kw, rest) = match t.find(char::is_whitespace) {
        Some(p) => (&t[..p], t[p..].trim_start()),
        None => (t, ""),
    };
    let keyword = kw.to_ascii_uppercase();
    let (flags, args) = parser::split_flags(rest);
    let json = if matches!(
        keyword.as_str(),
        "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" | "COPY" | "ADD" | "VOLUME"
    ) {
        parser::json_array(&args)?
    } else {
        None
    };
    let node = Node {
        keyword,
        flags,
        args,
        json,
        original: t.to_string(),
        heredocs: Vec::new(),
        start_line: 0,
        end_line: 0,
    };
    typed(&node, escape)
}

/// Types one node; errors name the file and the instruction's first line.
pub fn instruction(node: &Node, escape: char, file: &str) -> Result<Instruction, BuildError> {
    typed(node, escape).map_err(|msg| BuildError::Parse {
        file: file.to_string(),
        line: node.start_line,
        msg,
    })
}

/// Types every node of a parsed file.
pub fn instructions(ast: &Ast, file: &str) -> Result<Vec<Located>, BuildError> {
    if ast.nodes.is_empty() {
        return Err(BuildError::Invalid("file with no instructions".into()));
    }
    ast.nodes
        .iter()
        .map(|n| {
            Ok(Located {
                inst: instruction(n, ast.escape, file)?,
                line: n.start_line,
                end_line: n.end_line,
                text: n.original.clone(),
            })
        })
        .collect()
}

impl Instruction {
    /// Substitutes variables where Docker does (see the module doc), with `env` the stage's
    /// variables before this instruction (ENV and ARG values). FROM is expanded here too, but
    /// the plan already did that with the global ARGs.
    pub fn expand(&self, env: &dyn Lookup, escape: char) -> Result<Instruction, BuildError> {
        let w = |s: &str| process_word(s, env, escape);
        let opt = |s: &Option<String>| s.as_deref().map(w).transpose();
        let kv = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(k, v)| Ok((w(k)?, w(v)?)))
                .collect::<Result<Vec<_>, BuildError>>()
        };
        Ok(match self {
            Instruction::From(f) => Instruction::From(From {
                image: w(&f.image)?,
                name: f.name.clone(),
                platform: opt(&f.platform)?,
            }),
            Instruction::Run(r) => {
                let mut r = r.clone();
                r.mounts = r
                    .mount_specs
                    .iter()
                    .map(|s| parse_mount(s, &w))
                    .collect::<Result<_, _>>()?;
                Instruction::Run(r)
            }
            Instruction::Env(pairs) => Instruction::Env(kv(pairs)?),
            Instruction::Label(pairs) => Instruction::Label(kv(pairs)?),
            Instruction::Arg(decls) => Instruction::Arg(
                decls
                    .iter()
                    .map(|d| {
                        Ok(ArgDecl {
                            name: d.name.clone(),
                            default: opt(&d.default)?,
                        })
                    })
                    .collect::<Result<_, BuildError>>()?,
            ),
            Instruction::Expose(ps) => {
                let mut out = Vec::new();
                for p in ps {
                    out.extend(process_words(p, env, escape)?);
                }
                Instruction::Expose(out)
            }
            Instruction::Copy(c) => Instruction::Copy(expand_copy(c, env, escape)?),
            Instruction::Add(c) => Instruction::Add(expand_copy(c, env, escape)?),
            Instruction::Workdir(d) => Instruction::Workdir(w(d)?),
            Instruction::User(u) => Instruction::User(w(u)?),
            Instruction::StopSignal(s) => Instruction::StopSignal(w(s)?),
            Instruction::Volume(vs) => {
                let vs = vs.iter().map(|v| w(v)).collect::<Result<Vec<_>, _>>()?;
                if vs.iter().any(|v| v.trim().is_empty()) {
                    return Err(BuildError::Invalid(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                Instruction::Volume(vs)
            }
            other => other.clone(),
        })
    }
}

fn expand_copy(c: &Copy, env: &dyn Lookup, escape: char) -> Result<Copy, BuildError> {
    let w = |s: &str| process_word(s, env, escape);
    let mut out = c.clone();
    out.sources = c.sources.iter().map(|s| w(s)).collect::<Result<_, _>>()?;
    out.dest = w(&c.dest)?;
    out.chown = c.chown.as_deref().map(w).transpose()?;
    out.chmod = c.chmod.as_deref().map(w).transpose()?;
    if let Some(m) = &out.chmod {
        if u32::from_str_radix(m, 8).is_err() {
            return Err(BuildError::Invalid(format!("invalid chmod parameter: {m}")));
        }
    }
    for h in &mut out.inline {
        if h.expand {
            h.content = expand_heredoc(&h.content, env, escape)?;
        }
    }
    Ok(out)
}

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn ql(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    )
}

fn fmt_cmd(c: &Command) -> String {
    match c {
        Command::Shell(s) => format!("shell {}", q(s)),
        Command::Exec(v) => format!("exec {}", ql(v)),
    }
}

fn fmt_heredoc(h: &Heredoc) -> String {
    let mut s = format!("<<{}", h.name);
    if h.fd != 0 {
        s = format!("{}{s}", h.fd);
    }
    if h.chomp {
        s.push_str(" chomp");
    }
    if !h.expand {
        s.push_str(" noexpand");
    }
    format!("{s} {}", q(&h.content))
}

fn fmt_mount(m: &Mount) -> String {
    let mut s = format!("{:?}", m.kind).to_ascii_lowercase();
    let mut field = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            s.push_str(&format!(",{k}={v}"));
        }
    };
    field("target", m.target.clone());
    field("source", m.source.clone());
    field("from", m.from.clone());
    field("id", m.id.clone());
    field(
        "sharing",
        m.sharing.map(|x| format!("{x:?}").to_ascii_lowercase()),
    );
    field("mode", m.mode.map(|x| format!("{x:o}")));
    field("uid", m.uid.map(|x| x.to_string()));
    field("gid", m.gid.map(|x| x.to_string()));
    field("size", m.size.map(|x| x.to_string()));
    if m.required {
        s.push_str(",required");
    }
    s.push_str(if m.readonly { ",ro" } else { ",rw" });
    s
}

fn fmt_copy(c: &Copy) -> String {
    let mut s = String::new();
    let mut flag = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            s.push_str(&format!("--{k}={} ", q(v)));
        }
    };
    flag("from", &c.from);
    flag("chown", &c.chown);
    flag("chmod", &c.chmod);
    flag("checksum", &c.checksum);
    for (k, b) in [
        ("link", c.link),
        ("parents", c.parents),
        ("keep-git-dir", c.keep_git_dir),
        ("json", c.json),
    ] {
        if b {
            s.push_str(&format!("--{k} "));
        }
    }
    for e in &c.exclude {
        s.push_str(&format!("--exclude={} ", q(e)));
    }
    s.push_str(&format!("src={} dest={}", ql(&c.sources), q(&c.dest)));
    for h in &c.inline {
        s.push_str(&format!(" inline({})", fmt_heredoc(h)));
    }
    s
}

fn fmt_dur(d: &Option<Duration>) -> String {
    d.map(|d| format!("{d:?}")).unwrap_or_else(|| "-".into())
}

/// A stable one-line rendering (used by fixture dumps and logs).
impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kw = self.keyword();
        let pairs = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, v)| format!("{}={}", q(k), q(v)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let body = match self {
            Instruction::From(x) => {
                let mut s = q(&x.image);
                if let Some(n) = &x.name {
                    s.push_str(&format!(" AS {}", q(n)));
                }
                if let Some(p) = &x.platform {
                    s.push_str(&format!(" --platform={}", q(p)));
                }
                s
            }
            Instruction::Run(r) => {
                let mut s = String::new();
                for m in &r.mounts {
                    s.push_str(&format!("--mount={} ", fmt_mount(m)));
                }
                if let Some(n) = r.network {
                    s.push_str(&format!("--network={} ", format!("{n:?}").to_lowercase()));
                }
                if let Some(n) = r.security {
                    s.push_str(&format!("--security={} ", format!("{n:?}").to_lowercase()));
                }
                s.push_str(&fmt_cmd(&r.cmd));
                for h in &r.heredocs {
                    s.push_str(&format!(" heredoc({})", fmt_heredoc(h)));
                }
                s
            }
            Instruction::Cmd(c) | Instruction::Entrypoint(c) => fmt_cmd(c),
            Instruction::Env(v) | Instruction::Label(v) => pairs(v),
            Instruction::Arg(v) => v
                .iter()
                .map(|d| match &d.default {
                    Some(x) => format!("{}={}", q(&d.name), q(x)),
                    None => q(&d.name),
                })
                .collect::<Vec<_>>()
                .join(" "),
            Instruction::Expose(v) | Instruction::Volume(v) | Instruction::Shell(v) => ql(v),
            Instruction::Copy(c) | Instruction::Add(c) => fmt_copy(c),
            Instruction::Workdir(s)
            | Instruction::User(s)
            | Instruction::StopSignal(s)
            | Instruction::Maintainer(s) => q(s),
            Instruction::Healthcheck(Health::None) => "NONE".into(),
            Instruction::Healthcheck(Health::Check {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            }) => format!(
                "test={} interval={} timeout={} start-period={} start-interval={} retries={}",
                ql(test),
                fmt_dur(interval),
                fmt_dur(timeout),
                fmt_dur(start_period),
                fmt_dur(start_interval),
                retries.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
            ),
            Instruction::Onbuild {
                expression,
                trigger,
            } => format!("{} => {trigger}", q(expression)),
        };
        write!(f, "{kw} {body}")
    }
}

/// A stable, readable dump of typed instructions, one per line: `start-end KEYWORD …`.
pub fn dump(ls: &[Located]) -> String {
    let mut out = String::new();
    for l in ls {
        let lines = if l.end_line > l.line {
            format!("{}-{}", l.line, l.end_line)
        } else {
            l.line.to_string()
        };
        out.push_str(&format!("{lines:>5} {}\n", l.inst));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn mounts() {
        let id = |v: &str| Ok(v.to_string());
        let m = parse_mount("type=cache,target=/c,sharing=locked,mode=0700,uid=1", &id).unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!((m.mode, m.uid, m.readonly), (Some(0o700), Some(1), false));
        assert_eq!(m.cache_id(), "/c");
        let m = parse_mount("target=/src,rw", &id).unwrap();
        assert_eq!((m.kind, m.readonly), (MountType::Bind, false));
        let m = parse_mount("type=secret,target=/run/tok", &id).unwrap();
        assert_eq!((m.secret_id(), m.readonly), ("tok".to_string(), true));
        let m = parse_mount("type=secret,id=aws", &id).unwrap();
        assert_eq!(m.target_path(), "/run/secrets/aws");
        let e = |s: &str| parse_mount(s, &id).unwrap_err().to_string();
        assert_eq!(e("type=nfs,target=/x"), "unsupported mount type \"nfs\"");
        assert_eq!(
            e("type=bind,target=/x,mode=0600"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            e("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            e("type=cache,target=/x,foo=1"),
            "unexpected key 'foo' in 'foo=1'"
        );
        assert_eq!(
            e("from=$X,target=/x"),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        let env: Vec<(String, String)> = vec![("D".into(), "/data".into())];
        let w = |v: &str| process_word(v, &env, '\\');
        assert_eq!(
            parse_mount("type=cache,target=$D", &w)
                .unwrap()
                .target
                .as_deref(),
            Some("/data")
        );
    }

    #[test]
    fn run_scripts() {
        let h = |name: &str, content: &str| Heredoc {
            name: name.into(),
            content: content.into(),
            chomp: false,
            expand: true,
            fd: 0,
        };
        let mut r = Run {
            cmd: Command::Shell("<<EOF".into()),
            heredocs: vec![h("EOF", "echo hi\n")],
            mounts: vec![],
            mount_specs: vec![],
            network: None,
            security: None,
        };
        assert_eq!(
            r.script(),
            Script::Command(Command::Shell("echo hi\n".into()))
        );
        r.heredocs[0].content = "#!/usr/bin/env python3\nprint(1)\n".into();
        assert!(matches!(r.script(), Script::File { .. }));
        r.cmd = Command::Shell("cat <<EOF > /f".into());
        assert_eq!(
            r.script(),
            Script::Command(Command::Shell(
                "cat <<EOF > /f\n#!/usr/bin/env python3\nprint(1)\nEOF".into()
            ))
        );
    }

    #[test]
    fn env_expansion_sees_values_before_the_instruction() {
        let env: Vec<(String, String)> = vec![("abc".into(), "hello".into())];
        let i = Instruction::Env(vec![
            ("abc".into(), "bye".into()),
            ("def".into(), "$abc".into()),
        ]);
        assert_eq!(
            i.expand(&env, '\\').unwrap(),
            Instruction::Env(vec![
                ("abc".into(), "bye".into()),
                ("def".into(), "hello".into())
            ])
        );
    }
}
