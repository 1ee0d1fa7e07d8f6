//! Typed instructions from the line AST, their expansion with a stage's variables, and the
//! stage plan (global ARGs, targets, the stages a target needs).

use crate::parser::{Ast, Heredoc, Node};
use crate::shell::{process_word, process_words, split_raw, Lookup};
use crate::BuildError;
use std::collections::BTreeMap;

/// A command in shell form (run with the stage's SHELL) or exec form.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// A `RUN --mount=…` spec: its type and key/value fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub kind: String,
    pub fields: BTreeMap<String, String>,
}

impl Mount {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.fields.get(k).map(String::as_str)
    }
}

/// Arguments of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CopyArgs {
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub checksum: Option<String>,
    pub heredocs: Vec<Heredoc>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    None,
    Check {
        /// `["CMD", …]` or `["CMD-SHELL", "…"]`.
        test: Vec<String>,
        interval: Option<String>,
        timeout: Option<String>,
        start_period: Option<String>,
        start_interval: Option<String>,
        retries: Option<u32>,
    },
}

/// One Dockerfile instruction.
#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Run {
        cmd: Command,
        mounts: Vec<Mount>,
        network: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Cmd(Command),
    Entrypoint(Command),
    /// Raw `K=V` pairs (quotes kept until expansion).
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Copy(CopyArgs),
    Add(CopyArgs),
    Workdir(String),
    User(String),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Health),
    Shell(Vec<String>),
    /// The trigger instruction's text.
    Onbuild(String),
    Maintainer(String),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub inst: Instruction,
    pub line: usize,
    /// The text shown in `Step N/M : …`.
    pub text: String,
}

fn perr(file: &str, line: usize, msg: impl Into<String>) -> BuildError {
    BuildError::Parse {
        file: file.into(),
        line,
        msg: msg.into(),
    }
}

/// JSON array form, if the arguments are one.
fn json_array(args: &str) -> Option<Vec<String>> {
    let t = args.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn command(args: &str) -> Command {
    match json_array(args) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(args.to_string()),
    }
}

fn flag_map(
    flags: &[String],
    allowed: &[&str],
    kw: &str,
    file: &str,
    line: usize,
) -> Result<BTreeMap<String, Vec<String>>, BuildError> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in flags {
        let body = f.trim_start_matches("--");
        let (k, v) = body.split_once('=').unwrap_or((body, ""));
        if !allowed.contains(&k) {
            return Err(perr(file, line, format!("unknown flag: --{k} for {kw}")));
        }
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(m)
}

/// `K=V K2=V2` or legacy `K V…` (`legacy_ok`).
fn name_vals(
    args: &str,
    kw: &str,
    escape: char,
    file: &str,
    line: usize,
) -> Result<Vec<(String, String)>, BuildError> {
    let words = split_raw(args, escape);
    if words.is_empty() {
        return Err(perr(
            file,
            line,
            format!("{kw} requires at least one argument"),
        ));
    }
    if !words[0].contains('=') {
        if kw == "LABEL" {
            return Err(perr(
                file,
                line,
                "LABEL requires at least one argument of the form name=value",
            ));
        }
        // Legacy `ENV K V with spaces`.
        let t = args.trim();
        let (k, v) = t
            .split_once(char::is_whitespace)
            .ok_or_else(|| perr(file, line, format!("{kw} must have two arguments")))?;
        return Ok(vec![(k.to_string(), v.trim_start().to_string())]);
    }
    let mut out = Vec::new();
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(|| {
            perr(
                file,
                line,
                format!("Syntax error - can't find = in \"{w}\". Must be of the form: name=value"),
            )
        })?;
        if k.is_empty() {
            return Err(perr(file, line, format!("{kw} names can not be blank")));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

fn parse_mount(spec: &str, file: &str, line: usize) -> Result<Mount, BuildError> {
    let mut fields = BTreeMap::new();
    let mut kind = "bind".to_string();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, "true"));
        let k = k.to_ascii_lowercase();
        let k = match k.as_str() {
            "dst" | "destination" => "target".to_string(),
            "src" => "source".to_string(),
            _ => k,
        };
        if k == "type" {
            kind = v.to_string();
        } else {
            fields.insert(k, v.to_string());
        }
    }
    if !matches!(kind.as_str(), "bind" | "cache" | "secret" | "tmpfs" | "ssh") {
        return Err(perr(file, line, format!("unsupported mount type {kind:?}")));
    }
    if kind != "secret" && kind != "ssh" && !fields.contains_key("target") {
        return Err(perr(
            file,
            line,
            format!("mount type {kind} needs a target"),
        ));
    }
    if kind == "secret" && !fields.contains_key("id") && !fields.contains_key("target") {
        return Err(perr(file, line, "secret mount needs an id or a target"));
    }
    Ok(Mount { kind, fields })
}

fn copy_args(node: &Node, add: bool, escape: char, file: &str) -> Result<CopyArgs, BuildError> {
    let line = node.start_line;
    let kw = node.keyword.as_str();
    let allowed: &[&str] = if add {
        &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "keep-git-dir",
            "exclude",
        ]
    } else {
        &["from", "chown", "chmod", "link", "parents", "exclude"]
    };
    let f = flag_map(&node.flags, allowed, kw, file, line)?;
    let one = |k: &str| f.get(k).and_then(|v| v.last().cloned());
    let words = match json_array(&node.args) {
        Some(v) => v,
        None => split_raw(&node.args, escape),
    };
    let mut sources: Vec<String> = words.clone();
    let dest = sources.pop().unwrap_or_default();
    if sources.is_empty() && node.heredocs.is_empty() {
        return Err(perr(file, line, format!("{kw} requires at least two arguments, but only one was provided. Destination could not be determined")));
    }
    // Heredoc markers stand for files written from their content.
    sources.retain(|s| !s.starts_with("<<"));
    if let Some(m) = one("chmod") {
        if u32::from_str_radix(&m, 8).is_err() {
            return Err(perr(file, line, format!("invalid chmod parameter: {m}")));
        }
    }
    Ok(CopyArgs {
        sources,
        dest,
        from: one("from"),
        chown: one("chown"),
        chmod: one("chmod"),
        link: f.contains_key("link"),
        checksum: one("checksum"),
        heredocs: node.heredocs.clone(),
    })
}

/// Types one node.
pub fn instruction(node: &Node, escape: char, file: &str) -> Result<Instruction, BuildError> {
    let line = node.start_line;
    let kw = node.keyword.as_str();
    let args = node.args.trim();
    let no_flags = |allowed: &[&str]| flag_map(&node.flags, allowed, kw, file, line);
    let need = |n: &str| -> Result<(), BuildError> {
        if args.is_empty() {
            Err(perr(
                file,
                line,
                format!("{n} requires at least one argument"),
            ))
        } else {
            Ok(())
        }
    };
    Ok(match kw {
        "FROM" => {
            let f = no_flags(&["platform"])?;
            let w: Vec<&str> = args.split_whitespace().collect();
            let (image, name) = match w.as_slice() {
                [img] => (img.to_string(), None),
                [img, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    (img.to_string(), Some(name.to_ascii_lowercase()))
                }
                _ => {
                    return Err(perr(
                        file,
                        line,
                        "FROM requires either one or three arguments",
                    ))
                }
            };
            Instruction::From {
                image,
                name,
                platform: f.get("platform").and_then(|v| v.last().cloned()),
            }
        }
        "RUN" => {
            let f = no_flags(&["mount", "network", "security"])?;
            if args.is_empty() && node.heredocs.is_empty() {
                return Err(perr(file, line, "RUN requires at least one argument"));
            }
            let mut mounts = Vec::new();
            for m in f.get("mount").into_iter().flatten() {
                mounts.push(parse_mount(m, file, line)?);
            }
            let only_marker = args
                .trim()
                .trim_start_matches("<<")
                .trim_start_matches('-')
                .trim_matches(['"', '\''])
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
            let cmd = if !node.heredocs.is_empty() && only_marker {
                // `RUN <<EOF` runs the heredoc as a script.
                Command::Shell(node.heredocs[0].content.clone())
            } else if !node.heredocs.is_empty() {
                // `RUN <<EOF cmd`: the shell itself feeds the heredocs to the command.
                let mut script = args.to_string();
                for h in &node.heredocs {
                    script.push('\n');
                    script.push_str(&h.content);
                    script.push_str(&h.name);
                }
                Command::Shell(script)
            } else {
                command(args)
            };
            Instruction::Run {
                cmd,
                mounts,
                network: f.get("network").and_then(|v| v.last().cloned()),
                heredocs: node.heredocs.clone(),
            }
        }
        "CMD" => {
            no_flags(&[])?;
            need("CMD")?;
            Instruction::Cmd(command(args))
        }
        "ENTRYPOINT" => {
            no_flags(&[])?;
            need("ENTRYPOINT")?;
            Instruction::Entrypoint(command(args))
        }
        "ENV" => {
            no_flags(&[])?;
            Instruction::Env(name_vals(args, "ENV", escape, file, line)?)
        }
        "LABEL" => {
            no_flags(&[])?;
            Instruction::Label(name_vals(args, "LABEL", escape, file, line)?)
        }
        "ARG" => {
            no_flags(&[])?;
            need("ARG")?;
            let mut out = Vec::new();
            for w in split_raw(args, escape) {
                match w.split_once('=') {
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((w, None)),
                }
            }
            Instruction::Arg(out)
        }
        "EXPOSE" => {
            no_flags(&[])?;
            need("EXPOSE")?;
            Instruction::Expose(split_raw(args, escape))
        }
        "COPY" => Instruction::Copy(copy_args(node, false, escape, file)?),
        "ADD" => Instruction::Add(copy_args(node, true, escape, file)?),
        "WORKDIR" => {
            no_flags(&[])?;
            need("WORKDIR")?;
            Instruction::Workdir(args.to_string())
        }
        "USER" => {
            no_flags(&[])?;
            need("USER")?;
            Instruction::User(args.to_string())
        }
        "VOLUME" => {
            no_flags(&[])?;
            need("VOLUME")?;
            Instruction::Volume(json_array(args).unwrap_or_else(|| split_raw(args, escape)))
        }
        "STOPSIGNAL" => {
            no_flags(&[])?;
            need("STOPSIGNAL")?;
            Instruction::StopSignal(args.to_string())
        }
        "HEALTHCHECK" => {
            let f = no_flags(&[
                "interval",
                "timeout",
                "start-period",
                "start-interval",
                "retries",
            ])?;
            let one = |k: &str| f.get(k).and_then(|v| v.last().cloned());
            if args.eq_ignore_ascii_case("none") {
                Instruction::Healthcheck(Health::None)
            } else {
                let (kind, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
                if !kind.eq_ignore_ascii_case("cmd") {
                    return Err(perr(
                        file,
                        line,
                        format!("Unknown type {kind:?} in HEALTHCHECK (try CMD)"),
                    ));
                }
                let test = match json_array(rest) {
                    Some(v) => [vec!["CMD".to_string()], v].concat(),
                    None if rest.trim().is_empty() => {
                        return Err(perr(file, line, "Missing command after HEALTHCHECK CMD"))
                    }
                    None => vec!["CMD-SHELL".to_string(), rest.trim().to_string()],
                };
                let retries = match one("retries") {
                    Some(r) => Some(
                        r.parse::<u32>()
                            .map_err(|_| perr(file, line, format!("invalid --retries {r}")))?,
                    ),
                    None => None,
                };
                Instruction::Healthcheck(Health::Check {
                    test,
                    interval: one("interval"),
                    timeout: one("timeout"),
                    start_period: one("start-period"),
                    start_interval: one("start-interval"),
                    retries,
                })
            }
        }
        "SHELL" => {
            no_flags(&[])?;
            let v = json_array(args).ok_or_else(|| {
                perr(
                    file,
                    line,
                    "SHELL requires the arguments to be in JSON form",
                )
            })?;
            if v.is_empty() {
                return Err(perr(file, line, "SHELL requires at least one argument"));
            }
            Instruction::Shell(v)
        }
        "ONBUILD" => {
            no_flags(&[])?;
            need("ONBUILD")?;
            let inner = args
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match inner.as_str() {
                "ONBUILD" => {
                    return Err(perr(
                        file,
                        line,
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                "FROM" | "MAINTAINER" => {
                    return Err(perr(
                        file,
                        line,
                        format!("{inner} isn't allowed as an ONBUILD trigger"),
                    ))
                }
                _ => {}
            }
            Instruction::Onbuild(args.to_string())
        }
        "MAINTAINER" => {
            no_flags(&[])?;
            need("MAINTAINER")?;
            Instruction::Maintainer(args.to_string())
        }
        other => return Err(perr(file, line, format!("unknown instruction: {other}"))),
    })
}

/// Types every node of a parsed file.
pub fn instructions(ast: &Ast, file: &str) -> Result<Vec<Located>, BuildError> {
    ast.nodes
        .iter()
        .map(|n| {
            Ok(Located {
                inst: instruction(n, ast.escape, file)?,
                line: n.start_line,
                text: n.original.clone(),
            })
        })
        .collect()
}

impl Instruction {
    /// Substitutes variables where Docker does (ADD, COPY, ENV, EXPOSE, FROM, LABEL,
    /// STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults); RUN, CMD, ENTRYPOINT, SHELL,
    /// HEALTHCHECK and ONBUILD are left to the shell or to later.
    pub fn expand(&self, env: &dyn Lookup, escape: char) -> Result<Instruction, BuildError> {
        let w = |s: &str| process_word(s, env, escape);
        Ok(match self {
            Instruction::From {
                image,
                name,
                platform,
            } => Instruction::From {
                image: w(image)?,
                name: name.clone(),
                platform: platform.as_deref().map(w).transpose()?,
            },
            Instruction::Env(kv) => {
                // Each value sees the ones before it on the same line, as in Docker.
                let mut local: BTreeMap<String, String> = BTreeMap::new();
                let mut out = Vec::new();
                for (k, v) in kv {
                    let look = |n: &str| local.get(n).cloned().or_else(|| env.get(n));
                    let val = process_word(v, &look, escape)?;
                    local.insert(k.clone(), val.clone());
                    out.push((w(k)?, val));
                }
                Instruction::Env(out)
            }
            Instruction::Label(kv) => Instruction::Label(
                kv.iter()
                    .map(|(k, v)| Ok((w(k)?, w(v)?)))
                    .collect::<Result<_, BuildError>>()?,
            ),
            Instruction::Arg(kv) => Instruction::Arg(
                kv.iter()
                    .map(|(k, v)| Ok((k.clone(), v.as_deref().map(w).transpose()?)))
                    .collect::<Result<_, BuildError>>()?,
            ),
            Instruction::Expose(ps) => Instruction::Expose(
                ps.iter()
                    .map(|p| process_words(p, env, escape))
                    .collect::<Result<Vec<_>, _>>()?
                    .concat(),
            ),
            Instruction::Copy(c) => Instruction::Copy(expand_copy(c, &w)?),
            Instruction::Add(c) => Instruction::Add(expand_copy(c, &w)?),
            Instruction::Workdir(d) => Instruction::Workdir(w(d)?),
            Instruction::User(u) => Instruction::User(w(u)?),
            Instruction::Volume(v) => {
                Instruction::Volume(v.iter().map(|x| w(x)).collect::<Result<_, _>>()?)
            }
            Instruction::StopSignal(s) => Instruction::StopSignal(w(s)?),
            other => other.clone(),
        })
    }
}

fn expand_copy(
    c: &CopyArgs,
    w: &dyn Fn(&str) -> Result<String, BuildError>,
) -> Result<CopyArgs, BuildError> {
    Ok(CopyArgs {
        sources: c.sources.iter().map(|s| w(s)).collect::<Result<_, _>>()?,
        dest: w(&c.dest)?,
        from: c.from.as_deref().map(w).transpose()?,
        chown: c.chown.as_deref().map(w).transpose()?,
        chmod: c.chmod.clone(),
        link: c.link,
        checksum: c.checksum.clone(),
        heredocs: c.heredocs.clone(),
    })
}

/// One stage of a multi-stage Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Lower-case `AS` name, or empty.
    pub name: String,
    /// The FROM image, expanded with the global ARGs.
    pub base: String,
    pub platform: Option<String>,
    pub from_text: String,
    pub instructions: Vec<Located>,
}

/// The build plan: stages, the global ARG values, and the stages to build in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub stages: Vec<Stage>,
    /// Global ARGs (before the first FROM) with their values after `--build-arg`.
    pub global_args: BTreeMap<String, String>,
    /// Indices of the stages the target needs, in build order.
    pub order: Vec<usize>,
    pub escape: char,
}

/// Build args every Dockerfile may use without declaring them.
pub const PREDEFINED_ARGS: [&str; 12] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "TARGETPLATFORM",
    "BUILDPLATFORM",
];

/// Splits into stages and picks what `target` (empty: the last stage) needs.
pub fn plan(
    text: &str,
    file: &str,
    build_args: &BTreeMap<String, Option<String>>,
    target: &str,
) -> Result<Plan, BuildError> {
    let ast = crate::parser::parse(text, file)?;
    let all = instructions(&ast, file)?;
    let mut global_args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for l in all {
        match &l.inst {
            Instruction::From { .. } => {
                let expanded = l
                    .inst
                    .expand(&global_args, ast.escape)
                    .map_err(|e| at(e, file, l.line))?;
                let Instruction::From {
                    image,
                    name,
                    platform,
                } = expanded
                else {
                    return Err(BuildError::Invalid(
                        "FROM expansion changed the instruction".into(),
                    ));
                };
                if image.is_empty() {
                    return Err(perr(file, l.line, "base name (empty) should not be blank"));
                }
                stages.push(Stage {
                    name: name.unwrap_or_default(),
                    base: if image.eq_ignore_ascii_case("scratch") {
                        "scratch".to_string()
                    } else {
                        image
                    },
                    platform,
                    from_text: l.text.clone(),
                    instructions: Vec::new(),
                });
            }
            Instruction::Arg(kv) if stages.is_empty() => {
                for (k, v) in kv {
                    let val = match build_args.get(k) {
                        Some(Some(b)) => b.clone(),
                        _ => match v {
                            Some(d) => process_word(d, &global_args, ast.escape)
                                .map_err(|e| at(e, file, l.line))?,
                            None => continue,
                        },
                    };
                    global_args.insert(k.clone(), val);
                }
            }
            _ if stages.is_empty() => {
                return Err(perr(file, l.line, "no build stage in current context: instructions other than ARG must follow a FROM"));
            }
            _ => {
                if let Some(s) = stages.last_mut() {
                    s.instructions.push(l);
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(perr(file, 1, "the Dockerfile has no FROM instruction"));
    }
    let last = stages.len() - 1;
    let target_idx = if target.is_empty() {
        last
    } else {
        stages
            .iter()
            .position(|s| s.name.eq_ignore_ascii_case(target))
            .ok_or_else(|| {
                BuildError::Invalid(format!("target stage \"{target}\" could not be found"))
            })?
    };
    let index_of = |name: &str, before: usize| -> Option<usize> {
        if let Ok(n) = name.parse::<usize>() {
            return (n < before).then_some(n);
        }
        stages[..before]
            .iter()
            .position(|s| !s.name.is_empty() && s.name.eq_ignore_ascii_case(name))
    };
    // Depth-first over FROM <stage>, COPY --from=<stage> and RUN --mount from=<stage>.
    let mut order = Vec::new();
    let mut visiting = vec![false; stages.len()];
    fn visit(
        i: usize,
        stages: &[Stage],
        index_of: &dyn Fn(&str, usize) -> Option<usize>,
        order: &mut Vec<usize>,
        visiting: &mut [bool],
        file: &str,
    ) -> Result<(), BuildError> {
        if order.contains(&i) || visiting[i] {
            return Ok(());
        }
        visiting[i] = true;
        let mut deps = Vec::new();
        if let Some(d) = index_of(&stages[i].base, i) {
            deps.push(d);
        }
        for l in &stages[i].instructions {
            let refs: Vec<&str> = match &l.inst {
                Instruction::Copy(c) => c.from.iter().map(String::as_str).collect(),
                Instruction::Run { mounts, .. } => {
                    mounts.iter().filter_map(|m| m.get("from")).collect()
                }
                _ => Vec::new(),
            };
            for r in refs {
                if let Ok(n) = r.parse::<usize>() {
                    if n >= i {
                        return Err(perr(file, l.line, format!("invalid from flag value {r}: refers to current or future build stage")));
                    }
                }
                if let Some(d) = index_of(r, i) {
                    deps.push(d);
                }
            }
        }
        for d in deps {
            visit(d, stages, index_of, order, visiting, file)?;
        }
        order.push(i);
        Ok(())
    }
    visit(
        target_idx,
        &stages,
        &index_of,
        &mut order,
        &mut visiting,
        file,
    )?;
    Ok(Plan {
        stages,
        global_args,
        order,
        escape: ast.escape,
    })
}

fn at(e: BuildError, file: &str, line: usize) -> BuildError {
    match e {
        BuildError::Expand(m) => perr(file, line, m),
        other => other,
    }
}
