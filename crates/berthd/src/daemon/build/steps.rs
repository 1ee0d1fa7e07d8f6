//! The bridge from berth-build's typed instructions to the steps the builder executes:
//! expansion with the stage's variables, then a `Step` with everything resolved.

use super::BuildRequest;
use crate::error::{ApiError, Result};
use berth_build::{Command, Health, Instruction, Located};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A `RUN --mount`.
#[derive(Debug, Clone, PartialEq)]
pub enum RunMount {
    Cache {
        id: Option<String>,
        target: String,
    },
    Bind {
        source: String,
        target: String,
        from: Option<String>,
        rw: bool,
    },
    Secret {
        id: String,
        target: Option<String>,
        required: bool,
    },
    Tmpfs {
        target: String,
    },
}

/// One step, after expansion.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Run {
        argv: Vec<String>,
        shell_form: bool,
        mounts: Vec<RunMount>,
        network: Option<String>,
    },
    Copy {
        sources: Vec<String>,
        dest: String,
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<u32>,
        add: bool,
        /// Heredoc files: (name, content).
        heredocs: Vec<(String, String)>,
        /// ADD --checksum.
        checksum: Option<String>,
    },
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Cmd {
        argv: Vec<String>,
        shell_form: bool,
    },
    Entrypoint {
        argv: Vec<String>,
        shell_form: bool,
    },
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(serde_json::Value),
    Shell(Vec<String>),
    Onbuild(String),
    Maintainer(String),
}

/// An instruction as the builder holds it.
#[derive(Debug, Clone)]
pub struct Instr {
    pub text: String,
    pub inst: Instruction,
}

/// One stage to build.
pub struct PStage {
    pub name: String,
    pub base: String,
    pub from_text: String,
    pub steps: Vec<Instr>,
}

/// The build plan.
pub struct Plan {
    pub stages: Vec<PStage>,
    pub order: Vec<usize>,
    pub global_args: BTreeMap<String, String>,
    pub escape: char,
}

fn parse_err(e: berth_build::BuildError) -> ApiError {
    match e {
        berth_build::BuildError::Parse { file, line, msg } => ApiError::invalid(format!(
            "dockerfile parse error on line {line} of {file}: {msg}"
        )),
        other => ApiError::invalid(other.to_string()),
    }
}

fn instr(l: Located) -> Instr {
    Instr {
        text: l.text,
        inst: l.inst,
    }
}

/// Parses the Dockerfile and plans the stages the target needs.
pub fn plan(text: &str, file: &str, req: &BuildRequest) -> Result<Plan> {
    let p = berth_build::plan(text, file, &req.build_args, &req.target).map_err(parse_err)?;
    Ok(Plan {
        order: p.order,
        global_args: p.global_args,
        escape: p.escape,
        stages: p
            .stages
            .into_iter()
            .map(|s| PStage {
                name: s.name,
                base: s.base,
                from_text: s.from_text,
                steps: s.instructions.into_iter().map(instr).collect(),
            })
            .collect(),
    })
}

/// The ONBUILD triggers of a base image, parsed.
pub fn parse_trigger(text: &str) -> Result<Vec<Instr>> {
    let ast = berth_build::parser::parse(text, "ONBUILD").map_err(parse_err)?;
    let ls = berth_build::instructions(&ast, "ONBUILD").map_err(parse_err)?;
    Ok(ls.into_iter().map(instr).collect())
}

/// `.dockerignore` as a predicate on context-relative paths.
pub fn ignore_matcher(content: &str) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
    let m = berth_build::dockerignore::Matcher::from_file(content);
    Arc::new(move |p: &str| m.is_excluded(p))
}

pub fn is_predefined_arg(k: &str) -> bool {
    berth_build::PREDEFINED_ARGS.contains(&k)
}

/// Quotes a literal so expansion leaves it as it is (build `--label` values).
pub fn literal(v: &str) -> String {
    let mut o = String::new();
    for c in v.chars() {
        if matches!(c, '\\' | '$' | '"' | '\'' | ' ' | '\t') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// Go's duration syntax (`1m30s`, `500ms`) in nanoseconds.
pub fn duration_ns(s: &str) -> Result<i64> {
    let bad = || ApiError::invalid(format!("invalid duration {s:?}"));
    let mut total: f64 = 0.0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(total as i64)
}

fn cmd_parts(c: Command) -> (Vec<String>, bool) {
    match c {
        Command::Shell(s) => (vec![s], true),
        Command::Exec(v) => (v, false),
    }
}

/// Expands an instruction with the stage's variables and resolves it into a step.
pub fn expand(i: &Instr, vars: &HashMap<String, String>, escape: char) -> Result<Step> {
    let inst = i
        .inst
        .expand(vars, escape)
        .map_err(|e| ApiError::invalid(format!("{}: {e}", i.text)))?;
    Ok(match inst {
        Instruction::Run {
            cmd,
            mounts,
            network,
            ..
        } => {
            let (argv, shell_form) = cmd_parts(cmd);
            let mut ms = Vec::new();
            for m in mounts {
                let target = m.get("target").map(str::to_string);
                ms.push(match m.kind.as_str() {
                    "cache" => RunMount::Cache {
                        id: m.get("id").map(str::to_string),
                        target: target.unwrap_or_default(),
                    },
                    "bind" => RunMount::Bind {
                        source: m.get("source").unwrap_or(".").to_string(),
                        target: target.unwrap_or_default(),
                        from: m.get("from").map(str::to_string),
                        rw: matches!(m.get("rw").or(m.get("readwrite")), Some("true") | Some("")),
                    },
                    "secret" => {
                        let id = m
                            .get("id")
                            .map(str::to_string)
                            .or_else(|| {
                                target
                                    .as_deref()
                                    .and_then(|t| t.rsplit('/').next())
                                    .map(str::to_string)
                            })
                            .unwrap_or_default();
                        RunMount::Secret {
                            id,
                            target,
                            required: m.get("required") == Some("true"),
                        }
                    }
                    "tmpfs" => RunMount::Tmpfs {
                        target: target.unwrap_or_default(),
                    },
                    other => {
                        return Err(ApiError::not_implemented(format!(
                            "RUN --mount=type={other} is not supported by berth yet"
                        )))
                    }
                });
            }
            Step::Run {
                argv,
                shell_form,
                mounts: ms,
                network,
            }
        }
        Instruction::Copy(c) | Instruction::Add(c)
            if matches!(i.inst, Instruction::Copy(_) | Instruction::Add(_)) =>
        {
            let add = matches!(i.inst, Instruction::Add(_));
            let chmod = match &c.chmod {
                Some(m) => Some(
                    u32::from_str_radix(m, 8)
                        .map_err(|_| ApiError::invalid(format!("invalid chmod parameter: {m}")))?,
                ),
                None => None,
            };
            let mut heredocs = Vec::new();
            for h in &c.heredocs {
                let content = if h.expand {
                    berth_build::shell::process_word(&h.content, vars, escape)
                        .unwrap_or_else(|_| h.content.clone())
                } else {
                    h.content.clone()
                };
                heredocs.push((h.name.clone(), content));
            }
            Step::Copy {
                sources: c.sources,
                dest: c.dest,
                from: c.from,
                chown: c.chown,
                chmod,
                add,
                heredocs,
                checksum: c.checksum,
            }
        }
        Instruction::Env(kv) => Step::Env(kv),
        Instruction::Arg(kv) => Step::Arg(kv),
        Instruction::Label(kv) => Step::Label(kv),
        Instruction::Cmd(c) => {
            let (argv, shell_form) = cmd_parts(c);
            Step::Cmd { argv, shell_form }
        }
        Instruction::Entrypoint(c) => {
            let (argv, shell_form) = cmd_parts(c);
            Step::Entrypoint { argv, shell_form }
        }
        Instruction::Workdir(w) => Step::Workdir(w),
        Instruction::User(u) => Step::User(u),
        Instruction::Expose(p) => Step::Expose(p),
        Instruction::Volume(v) => Step::Volume(v),
        Instruction::StopSignal(s) => Step::StopSignal(s),
        Instruction::Shell(s) => Step::Shell(s),
        Instruction::Onbuild(t) => Step::Onbuild(t),
        Instruction::Maintainer(m) => Step::Maintainer(m),
        Instruction::Healthcheck(Health::None) => {
            Step::Healthcheck(serde_json::json!({"Test": ["NONE"]}))
        }
        Instruction::Healthcheck(Health::Check {
            test,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        }) => {
            let mut h = serde_json::json!({"Test": test});
            for (k, v) in [
                ("Interval", interval),
                ("Timeout", timeout),
                ("StartPeriod", start_period),
                ("StartInterval", start_interval),
            ] {
                if let Some(v) = v {
                    h[k] = serde_json::json!(duration_ns(&v)?);
                }
            }
            if let Some(r) = retries {
                h["Retries"] = serde_json::json!(r);
            }
            Step::Healthcheck(h)
        }
        Instruction::From { .. } | Instruction::Copy(_) | Instruction::Add(_) => {
            return Err(ApiError::invalid(format!(
                "{}: unexpected instruction here",
                i.text
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ns("5s").unwrap(), 5_000_000_000);
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("250ms").unwrap(), 250_000_000);
        assert!(duration_ns("5").is_err());
        assert!(duration_ns("").is_err());
    }

    #[test]
    fn literals_survive_expansion() {
        let v = "a $b \"c\" 'd'";
        let got = berth_build::shell::process_word(&literal(v), &HashMap::new(), '\\').unwrap();
        assert_eq!(got, v);
    }
}
