//! The bridge from berth-build's typed instructions to the steps the builder executes:
//! expansion with the stage's variables, then a `Step` with everything resolved.

use super::BuildRequest;
use crate::error::{ApiError, Result};
use berth_build::{Command, Health, Instruction, Located, MountType, Network, Script, Source};
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

/// A COPY or ADD after expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyStep {
    pub sources: Vec<String>,
    /// ADD --checksum.
    pub checksum: Option<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<u32>,
    pub add: bool,
    /// Heredoc files: (name, content).
    pub heredocs: Vec<(String, String)>,
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
    Copy(CopyStep),
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
    let host = berth_distribution::Platform::host();
    let platform = format!("linux/{}", host.architecture);
    let builtin: BTreeMap<String, String> = [
        ("TARGETPLATFORM", platform.clone()),
        ("TARGETOS", "linux".to_string()),
        ("TARGETARCH", host.architecture.clone()),
        ("BUILDPLATFORM", platform),
        ("BUILDOS", "linux".to_string()),
        ("BUILDARCH", host.architecture),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let opts = berth_build::PlanOptions {
        build_args: req
            .build_args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect(),
        target: (!req.target.is_empty()).then(|| req.target.clone()),
        builtin_args: builtin,
    };
    let p = berth_build::Plan::new(text, file, &opts).map_err(parse_err)?;
    Ok(Plan {
        order: p.order.clone(),
        global_args: p
            .global_args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect(),
        escape: p.escape,
        stages: p
            .stages
            .into_iter()
            .map(|s| PStage {
                name: s.name.unwrap_or_default(),
                base: match s.base {
                    // Stages are referred to by index; `from` resolves numbers first.
                    Source::Stage(n) => n.to_string(),
                    Source::Image(i) => i,
                },
                from_text: s.from.text,
                steps: s.instructions.into_iter().map(instr).collect(),
            })
            .collect(),
    })
}

/// The ONBUILD triggers of a base image, parsed.
pub fn parse_trigger(text: &str) -> Result<Vec<Instr>> {
    let inst = berth_build::instructions::parse_trigger(text, '\\')
        .map_err(|e| ApiError::invalid(format!("invalid ONBUILD trigger {text:?}: {e}")))?;
    Ok(vec![Instr {
        text: text.to_string(),
        inst,
    }])
}

/// `.dockerignore` as a predicate on context-relative paths.
pub fn ignore_matcher(content: &str) -> Result<super::Excluder> {
    let m = berth_build::dockerignore::Matcher::from_file(content)
        .map_err(|e| ApiError::invalid(format!("invalid .dockerignore: {e}")))?;
    Ok(Arc::new(move |p: &str| m.is_excluded(p)))
}

pub fn is_predefined_arg(k: &str) -> bool {
    berth_build::PREDEFINED_ARGS.contains(&k) || berth_build::PLATFORM_ARGS.contains(&k)
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
        Instruction::Run(r) => {
            let (argv, shell_form) = match r.script() {
                Script::Command(c) => cmd_parts(c),
                // A `#!` heredoc script: run its body with the stage's shell.
                Script::File { body, .. } => (vec![body], true),
            };
            let mut ms = Vec::new();
            for m in &r.mounts {
                ms.push(match m.kind {
                    MountType::Cache => RunMount::Cache {
                        id: Some(m.cache_id()),
                        target: m.target_path(),
                    },
                    MountType::Bind => RunMount::Bind {
                        source: m.source.clone().unwrap_or_else(|| ".".into()),
                        target: m.target_path(),
                        from: m.from.clone(),
                        rw: !m.readonly,
                    },
                    MountType::Secret => RunMount::Secret {
                        id: m.secret_id(),
                        target: Some(m.target_path()),
                        required: m.required,
                    },
                    MountType::Tmpfs => RunMount::Tmpfs {
                        target: m.target_path(),
                    },
                    MountType::Ssh => {
                        return Err(ApiError::not_implemented(
                            "RUN --mount=type=ssh is not supported by berth yet",
                        ))
                    }
                });
            }
            Step::Run {
                argv,
                shell_form,
                mounts: ms,
                network: r.network.map(|n| {
                    match n {
                        Network::Default => "default",
                        Network::None => "none",
                        Network::Host => "host",
                    }
                    .to_string()
                }),
            }
        }
        Instruction::Copy(c) | Instruction::Add(c) => {
            let add = matches!(i.inst, Instruction::Add(_));
            let chmod = match &c.chmod {
                Some(m) => Some(
                    u32::from_str_radix(m, 8)
                        .map_err(|_| ApiError::invalid(format!("invalid chmod parameter: {m}")))?,
                ),
                None => None,
            };
            Step::Copy(CopyStep {
                sources: c.sources,
                checksum: c.checksum,
                dest: c.dest,
                from: c.from,
                chown: c.chown,
                chmod,
                add,
                heredocs: c
                    .inline
                    .iter()
                    .map(|h| (h.name.clone(), h.data()))
                    .collect(),
            })
        }
        Instruction::Env(kv) => Step::Env(kv),
        Instruction::Arg(kv) => Step::Arg(kv.into_iter().map(|a| (a.name, a.default)).collect()),
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
        Instruction::Onbuild { expression, .. } => Step::Onbuild(expression),
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
                    h[k] = serde_json::json!(v.as_nanos() as u64);
                }
            }
            if let Some(r) = retries {
                h["Retries"] = serde_json::json!(r);
            }
            Step::Healthcheck(h)
        }
        Instruction::From(_) => {
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
    fn literals_survive_expansion() {
        let v = "a $b \"c\" 'd'";
        let got = berth_build::shell::process_word(&literal(v), &HashMap::new(), '\\').unwrap();
        assert_eq!(got, v);
    }
}
