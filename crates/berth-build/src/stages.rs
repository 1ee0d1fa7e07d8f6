//! The build plan: instructions split into stages, global ARGs (before the first FROM) with
//! `--build-arg` overrides, FROM expanded with them, the target stage and the stages it
//! needs (through `FROM <stage>`, `COPY --from=<stage>` and `RUN --mount=from=<stage>`) in
//! build order.
//!
//! ARG scoping follows Docker: a global ARG is visible in FROM lines only; inside a stage it
//! must be declared again (`ARG NAME`, no default) to be used, and then takes its global
//! value. [`Plan::arg_value`] gives the value a stage-level ARG takes.

use crate::instructions::{instructions, Instruction, Located};
use crate::shell::{process_word, Lookup};
use crate::BuildError;
use std::collections::{BTreeMap, BTreeSet};

/// Build args every Dockerfile may use without declaring them (proxies: passed to RUN's
/// environment, never committed to the image).
pub const PREDEFINED_ARGS: [&str; 10] = [
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
];

/// Platform args the builder provides in the global scope without an ARG
/// (`FROM --platform=$BUILDPLATFORM …`): pass their values in [`PlanOptions::builtin_args`].
pub const PLATFORM_ARGS: [&str; 8] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// Inputs of a plan besides the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// `--build-arg NAME=value`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`; `None` builds the last stage.
    pub target: Option<String>,
    /// Values of [`PLATFORM_ARGS`] (and any other automatic global args).
    pub builtin_args: BTreeMap<String, String>,
}

/// Where a `COPY --from` / `RUN --mount from=` / `FROM` reference points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A stage of this Dockerfile, by index.
    Stage(usize),
    /// An image reference (`scratch` included).
    Image(String),
}

/// One stage of a multi-stage Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Position in the Dockerfile (what `--from=<n>` refers to).
    pub index: usize,
    /// The lower-case `AS` name.
    pub name: Option<String>,
    /// The base: an earlier stage, or an image reference expanded with the global ARGs.
    pub base: Source,
    /// `--platform`, expanded with the global ARGs.
    pub platform: Option<String>,
    /// The FROM instruction itself.
    pub from: Located,
    /// The stage's instructions after FROM, unexpanded.
    pub instructions: Vec<Located>,
}

/// The build plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The Dockerfile's name, used in errors.
    pub file: String,
    pub escape: char,
    pub syntax: Option<String>,
    pub stages: Vec<Stage>,
    /// Global ARGs in declaration order with their values (`None`: declared without value).
    pub global_args: Vec<(String, Option<String>)>,
    /// Index of the target stage.
    pub target: usize,
    /// Indices of the stages the target needs, dependencies first, target last.
    pub order: Vec<usize>,
    pub build_args: BTreeMap<String, String>,
    pub builtin_args: BTreeMap<String, String>,
}

fn at(file: &str, line: usize, e: impl std::fmt::Display) -> BuildError {
    BuildError::Parse {
        file: file.to_string(),
        line,
        msg: e.to_string(),
    }
}

impl Plan {
    /// Parses `text` and plans the build.
    pub fn new(text: &str, file: &str, opts: &PlanOptions) -> Result<Plan, BuildError> {
        let ast = crate::parser::parse(text, file)?;
        let all = instructions(&ast, file)?;
        let mut global: Vec<(String, Option<String>)> = opts
            .builtin_args
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        let mut declared_globals = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        for l in all {
            match &l.inst {
                Instruction::From(f) => {
                    let scope = Scope(&global);
                    let image = process_word(&f.image, &scope, ast.escape)
                        .map_err(|e| at(file, l.line, e))?;
                    if image.is_empty() {
                        return Err(at(
                            file,
                            l.line,
                            format!("base name ({}) should not be blank", f.image),
                        ));
                    }
                    let platform = f
                        .platform
                        .as_deref()
                        .map(|p| process_word(p, &scope, ast.escape))
                        .transpose()
                        .map_err(|e| at(file, l.line, e))?;
                    let lower = image.to_ascii_lowercase();
                    let base = match stages
                        .iter()
                        .rev()
                        .find(|s| s.name.as_deref() == Some(lower.as_str()))
                    {
                        Some(s) => Source::Stage(s.index),
                        None if lower == "scratch" => Source::Image("scratch".into()),
                        None => Source::Image(image),
                    };
                    stages.push(Stage {
                        index: stages.len(),
                        name: f.name.clone(),
                        base,
                        platform,
                        from: l.clone(),
                        instructions: Vec::new(),
                    });
                }
                Instruction::Arg(decls) if stages.is_empty() => {
                    for d in decls {
                        let value = match opts.build_args.get(&d.name) {
                            Some(v) => Some(v.clone()),
                            None => d
                                .default
                                .as_deref()
                                .map(|v| process_word(v, &Scope(&global), ast.escape))
                                .transpose()
                                .map_err(|e| at(file, l.line, e))?,
                        };
                        global.retain(|(k, _)| k != &d.name);
                        global.push((d.name.clone(), value.clone()));
                        declared_globals.retain(|(k, _): &(String, _)| k != &d.name);
                        declared_globals.push((d.name.clone(), value));
                    }
                }
                _ => match stages.last_mut() {
                    Some(s) => s.instructions.push(l),
                    None => return Err(at(file, l.line, "no build stage in current context")),
                },
            }
        }
        if stages.is_empty() {
            return Err(BuildError::Invalid(
                "dockerfile contains no stages to build".into(),
            ));
        }
        let target = match opts.target.as_deref().filter(|t| !t.is_empty()) {
            None => stages.len() - 1,
            Some(t) => {
                let lower = t.to_ascii_lowercase();
                stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(lower.as_str()))
                    .ok_or_else(|| {
                        BuildError::Invalid(format!("target stage \"{t}\" could not be found"))
                    })?
            }
        };
        let mut plan = Plan {
            file: file.to_string(),
            escape: ast.escape,
            syntax: ast.syntax,
            stages,
            global_args: declared_globals,
            target,
            order: Vec::new(),
            build_args: opts.build_args.clone(),
            builtin_args: opts.builtin_args.clone(),
        };
        let mut state = vec![0u8; plan.stages.len()]; // 0 new, 1 visiting, 2 done
        let mut order = Vec::new();
        plan.visit(target, &mut state, &mut order)?;
        plan.order = order;
        Ok(plan)
    }

    fn visit(&self, i: usize, state: &mut [u8], order: &mut Vec<usize>) -> Result<(), BuildError> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let name = self.stages[i]
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("stage-{i}"));
                return Err(BuildError::Invalid(format!(
                    "circular dependency detected on stage: {name}"
                )));
            }
            _ => {}
        }
        state[i] = 1;
        for d in self.dependencies(i)? {
            self.visit(d, state, order)?;
        }
        state[i] = 2;
        order.push(i);
        Ok(())
    }

    /// The stages stage `i` uses (its base and every `--from`), without duplicates.
    pub fn dependencies(&self, i: usize) -> Result<Vec<usize>, BuildError> {
        let st = &self.stages[i];
        let mut deps = Vec::new();
        if let Source::Stage(b) = st.base {
            deps.push(b);
        }
        for l in &st.instructions {
            let refs: Vec<&str> = match &l.inst {
                Instruction::Copy(c) => c.from.iter().map(String::as_str).collect(),
                Instruction::Run(r) => r.mounts.iter().filter_map(|m| m.from.as_deref()).collect(),
                _ => Vec::new(),
            };
            for r in refs {
                if let Source::Stage(d) = self.resolve(r, l.line)? {
                    if !deps.contains(&d) {
                        deps.push(d);
                    }
                }
            }
        }
        Ok(deps)
    }

    /// Resolves a `--from` value: a stage index, a stage name (case-insensitive), or else an
    /// image reference. `line` is used in the error for an index out of range.
    pub fn resolve(&self, from: &str, line: usize) -> Result<Source, BuildError> {
        if let Ok(n) = from.parse::<i64>() {
            return match usize::try_from(n).ok().filter(|n| *n < self.stages.len()) {
                Some(n) => Ok(Source::Stage(n)),
                None => Err(at(&self.file, line, format!("invalid stage index {n}"))),
            };
        }
        let lower = from.to_ascii_lowercase();
        Ok(
            match self
                .stages
                .iter()
                .find(|s| s.name.as_deref() == Some(lower.as_str()))
            {
                Some(s) => Source::Stage(s.index),
                None => Source::Image(from.to_string()),
            },
        )
    }

    /// Expands one instruction with the stage's variables; errors name the file and line.
    pub fn expand(&self, l: &Located, env: &dyn Lookup) -> Result<Instruction, BuildError> {
        l.inst.expand(env, self.escape).map_err(|e| match e {
            BuildError::Parse { .. } => e,
            other => at(&self.file, l.line, other),
        })
    }

    /// The value a stage-level `ARG name[=default]` takes: the `--build-arg` if given, else
    /// the default (already expanded with the stage's variables), else the global ARG or
    /// builtin arg of that name; `None` leaves it unset.
    pub fn arg_value(&self, name: &str, expanded_default: Option<String>) -> Option<String> {
        if let Some(v) = self.build_args.get(name) {
            return Some(v.clone());
        }
        if expanded_default.is_some() {
            return expanded_default;
        }
        if let Some((_, v)) = self.global_args.iter().rev().find(|(k, _)| k == name) {
            return v.clone();
        }
        self.builtin_args.get(name).cloned()
    }

    /// Proxy build args given with `--build-arg`: RUN sees them without an ARG.
    pub fn proxy_env(&self) -> Vec<(String, String)> {
        self.build_args
            .iter()
            .filter(|(k, _)| PREDEFINED_ARGS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Build args no ARG of the built stages (or the global scope) declares, for Docker's
    /// "One or more build-args [...] were not consumed" warning.
    pub fn unused_build_args(&self) -> Vec<String> {
        let mut declared: BTreeSet<&str> =
            self.global_args.iter().map(|(k, _)| k.as_str()).collect();
        for &i in &self.order {
            for l in &self.stages[i].instructions {
                if let Instruction::Arg(ds) = &l.inst {
                    declared.extend(ds.iter().map(|d| d.name.as_str()));
                }
            }
        }
        self.build_args
            .keys()
            .filter(|k| !declared.contains(k.as_str()) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// Global-scope lookup: a name declared without a value is unset.
struct Scope<'a>(&'a [(String, Option<String>)]);

impl Lookup for Scope<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
    }
}
