//! `POST /build`: the legacy builder. The context is unpacked into a private directory, the
//! Dockerfile parsed (errors answer before the stream starts), and the stages the target needs
//! are run step by step: each step is either reused from the cache or executed — RUN in a
//! container, COPY/ADD as a layer written from the sources, the rest as config changes — and
//! committed as an image. Tags are applied only when every step succeeded.
//!
//! ```text
//! <data-root>/tmp/build-<id>/          one build's scratch space, removed when it ends
//!     context/                          the unpacked context (minus .dockerignore'd files)
//!     secrets/<id>                      secrets for RUN --mount=type=secret (never in a layer)
//!     layer-<n>.tar                     a layer being committed
//! <data-root>/builder/cache-mounts/<k>/ RUN --mount=type=cache directories, kept across builds
//! ```

pub mod cache;
mod context;
mod copy;
mod run;
mod steps;

use super::{blocking, Daemon};
use crate::error::{image_err, internal, ApiError, Result};
use berth_api::message::JsonMessage;
use berth_image::{History, ImageConfig, ImageRecord, NewCommit, Reference};
use copy::CopySpec;
use run::RunStep;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use steps::Instr;
pub use steps::{CopyStep, RunMount, Step};
use tokio::sync::mpsc;

/// A build as the API asks for it.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub tags: Vec<String>,
    pub dockerfile: String,
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: String,
    pub no_cache: bool,
    pub labels: BTreeMap<String, String>,
    pub quiet: bool,
    pub network: String,
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub cpuset_cpus: String,
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Credentials by registry host, for pulling base images (`X-Registry-Config`).
    pub registry_auth: BTreeMap<String, berth_distribution::Credentials>,
}

/// A build's scratch directory, removed (with anything mounted under it) when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.0.display(), error = %e, "cannot remove build dir");
            }
        }
    }
}

/// A read-only view of an image's root filesystem (for COPY --from): the single layer dir, or
/// an overlay of its layers, unmounted on drop.
struct RootView {
    path: PathBuf,
    mounted: bool,
}

impl RootView {
    fn open(lowers: &[PathBuf], at: PathBuf) -> Result<RootView> {
        match lowers {
            [] => {
                std::fs::create_dir_all(&at).map_err(|e| internal("create empty root", e))?;
                Ok(RootView {
                    path: at,
                    mounted: false,
                })
            }
            [one] => Ok(RootView {
                path: one.clone(),
                mounted: false,
            }),
            many => {
                std::fs::create_dir_all(&at).map_err(|e| internal("create mount point", e))?;
                let lower = many
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":");
                nix::mount::mount(
                    Some("overlay"),
                    &at,
                    Some("overlay"),
                    nix::mount::MsFlags::MS_RDONLY,
                    Some(format!("lowerdir={lower}").as_str()),
                )
                .map_err(|e| internal("mount image root for COPY --from", e))?;
                Ok(RootView {
                    path: at,
                    mounted: true,
                })
            }
        }
    }
}

impl Drop for RootView {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

/// The state of the stage being built.
struct Stage {
    /// The image the next step builds on (`None`: scratch with nothing committed yet).
    image: Option<ImageRecord>,
    config: ImageConfig,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, String>,
}

impl Stage {
    fn cc(&mut self) -> &mut berth_image::ContainerConfig {
        self.config.config.get_or_insert_with(Default::default)
    }

    fn env(&self) -> Vec<String> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
    }

    fn workdir(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .unwrap_or_default()
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.shell.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn id(&self) -> String {
        self.image
            .as_ref()
            .map(|i| i.id.to_string())
            .unwrap_or_default()
    }

    /// Variables visible to expansion: ENV, then ARGs (ENV wins, as in Docker).
    fn lookup(&self) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = self.args.clone().into_iter().collect();
        for e in self.env() {
            if let Some((k, v)) = e.split_once('=') {
                m.insert(k.to_string(), v.to_string());
            }
        }
        m
    }
}

/// Says whether a context-relative path is excluded (.dockerignore).
pub type Excluder = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Everything one build run shares.
struct Ctx {
    d: Arc<Daemon>,
    req: BuildRequest,
    dir: PathBuf,
    context: PathBuf,
    tx: mpsc::Sender<JsonMessage>,
    /// Final images of the stages built so far, by stage index.
    stage_images: Vec<Option<ImageRecord>>,
    stage_names: Vec<String>,
    n: usize,
    excluded: Excluder,
    used_args: std::collections::BTreeSet<String>,
    escape: char,
}

impl Ctx {
    async fn say(&self, s: impl Into<String>) {
        if !self.req.quiet {
            let _ = self.tx.send(JsonMessage::stream(s)).await;
        }
    }

    fn next_file(&mut self, what: &str) -> PathBuf {
        self.n += 1;
        self.dir.join(format!("{what}-{}", self.n))
    }
}

fn short(id: &str) -> &str {
    let h = id.strip_prefix("sha256:").unwrap_or(id);
    &h[..h.len().min(12)]
}

impl Daemon {
    /// Starts a build from the context tar at `context`. Errors in the request or the
    /// Dockerfile answer before the stream starts.
    pub async fn build(
        self: &Arc<Self>,
        req: BuildRequest,
        context_tar: crate::routes::tempfile_path::TempPath,
    ) -> Result<mpsc::Receiver<JsonMessage>> {
        let dir = self
            .paths
            .data_root
            .join("tmp")
            .join(format!("build-{}", super::random_hex(8)));
        let scratch = Scratch(dir.clone());
        let ctx_dir = dir.join("context");
        let tar = context_tar.0.clone();
        let dockerfile_name = if req.dockerfile.is_empty() {
            "Dockerfile".to_string()
        } else {
            req.dockerfile.clone()
        };
        let (plan, excluded) = {
            let ctx_dir = ctx_dir.clone();
            let name = dockerfile_name.clone();
            let req = req.clone();
            blocking(move || {
                std::fs::create_dir_all(&ctx_dir).map_err(|e| internal("create build dir", e))?;
                context::unpack(&tar, &ctx_dir)?;
                let df_path = copy::resolve_in_root(&ctx_dir, &name, true)?;
                let text = std::fs::read_to_string(&df_path).map_err(|_| {
                    ApiError::invalid(format!("Cannot locate specified Dockerfile: {name}"))
                })?;
                let ignore =
                    std::fs::read_to_string(ctx_dir.join(".dockerignore")).unwrap_or_default();
                let plan = steps::plan(&text, &name, &req)?;
                let excluded = steps::ignore_matcher(&ignore)?;
                Ok((plan, excluded))
            })
            .await?
        };
        drop(context_tar);
        let (tx, rx) = mpsc::channel(256);
        let d = self.clone();
        tokio::spawn(async move {
            let _scratch = scratch;
            let mut cx = Ctx {
                d: d.clone(),
                stage_images: vec![None; plan.stages.len()],
                stage_names: plan.stages.iter().map(|s| s.name.clone()).collect(),
                req,
                dir,
                context: ctx_dir,
                tx: tx.clone(),
                n: 0,
                excluded,
                used_args: Default::default(),
                escape: plan.escape,
            };
            match cx.run_plan(&plan).await {
                Ok(id) => {
                    if cx.req.quiet {
                        let _ = tx.send(JsonMessage::stream(format!("{id}\n"))).await;
                    }
                }
                Err(e) => {
                    tracing::info!(error = %e.message, "build failed");
                    let _ = tx.send(JsonMessage::error(e.message)).await;
                }
            }
            if let Err(e) = d.cache_trim(cache::DEFAULT_CAP).await {
                tracing::warn!(error = %e.message, "trimming the build cache");
            }
        });
        Ok(rx)
    }
}

impl Ctx {
    async fn run_plan(&mut self, plan: &steps::Plan) -> Result<String> {
        let total: usize = plan
            .order
            .iter()
            .map(|&i| plan.stages[i].steps.len() + 1)
            .sum::<usize>()
            + usize::from(!self.req.labels.is_empty());
        let mut k = 0;
        let mut last = None;
        for (pos, &i) in plan.order.iter().enumerate() {
            let st = &plan.stages[i];
            k += 1;
            self.say(format!("Step {k}/{total} : {}\n", st.from_text))
                .await;
            let mut stage = self.from(&st.base, &plan.global_args).await?;
            self.say(format!(
                " ---> {}\n",
                short(&stage.id()).to_string() + if stage.image.is_none() { "scratch" } else { "" }
            ))
            .await;
            for s in self.onbuild_triggers(&stage)? {
                self.say("# Executing 1 build trigger\n").await;
                self.step(&mut stage, &s).await?;
            }
            for s in &st.steps {
                k += 1;
                self.say(format!("Step {k}/{total} : {}\n", s.text)).await;
                self.step(&mut stage, s).await?;
            }
            let is_last = pos + 1 == plan.order.len();
            if is_last && !self.req.labels.is_empty() {
                k += 1;
                let text = format!(
                    "LABEL {}",
                    self.req
                        .labels
                        .iter()
                        .map(|(a, b)| format!("{a:?}={b:?}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                self.say(format!("Step {k}/{total} : {text}\n")).await;
                let labels: Vec<(String, String)> = self
                    .req
                    .labels
                    .iter()
                    .map(|(k, v)| (steps::literal(k), steps::literal(v)))
                    .collect();
                let s = Instr {
                    text: text.clone(),
                    inst: berth_build::Instruction::Label(labels),
                };
                self.step(&mut stage, &s).await?;
            }
            let img = match stage.image.clone() {
                Some(i) => i,
                None => {
                    // FROM scratch with nothing else: commit the empty image.
                    self.commit(&mut stage, None, "").await?;
                    stage
                        .image
                        .clone()
                        .ok_or_else(|| internal("build", "no image"))?
                }
            };
            self.stage_images[i] = Some(img.clone());
            last = Some(img);
        }
        let img = last.ok_or_else(|| ApiError::invalid("the Dockerfile has no stages"))?;
        let unused: Vec<&String> = self
            .req
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !steps::is_predefined_arg(k))
            .collect();
        if !unused.is_empty() {
            self.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                unused
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
            .await;
        }
        let id = img.id.to_string();
        let _ = self
            .tx
            .send(JsonMessage {
                aux: Some(serde_json::json!({"ID": id})),
                ..Default::default()
            })
            .await;
        self.say(format!("Successfully built {}\n", short(&id)))
            .await;
        let mut refs = Vec::new();
        for t in &self.req.tags {
            let r = Reference::parse(t).map_err(image_err)?;
            let r = if r.tag().is_none() && r.digest().is_none() {
                r.with_tag("latest")
            } else {
                r
            };
            refs.push(r);
        }
        let images = self.d.images.clone();
        let rid = img.id.clone();
        let refs2 = refs.clone();
        blocking(move || images.set_refs(&rid, &refs2).map_err(image_err)).await?;
        for r in refs {
            self.say(format!("Successfully tagged {}\n", r.familiar()))
                .await;
        }
        Ok(id)
    }

    /// Resolves a stage's base: `scratch`, an earlier stage, or an image (pulled if missing).
    async fn from(&mut self, base: &str, global: &BTreeMap<String, String>) -> Result<Stage> {
        let _ = global;
        let image = if base == "scratch" {
            None
        } else if let Some(i) = self.stage_index(base) {
            Some(
                self.stage_images[i]
                    .clone()
                    .ok_or_else(|| ApiError::invalid(format!("stage {base} was not built")))?,
            )
        } else {
            Some(self.image_or_pull(base).await?)
        };
        let config = match &image {
            Some(i) => i.config.clone(),
            None => ImageConfig {
                architecture: berth_distribution::Platform::host().architecture,
                os: "linux".into(),
                config: Some(berth_image::ContainerConfig {
                    env: Some(vec![
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        };
        Ok(Stage {
            image,
            config,
            args: BTreeMap::new(),
        })
    }

    fn stage_index(&self, name: &str) -> Option<usize> {
        if let Ok(n) = name.parse::<usize>() {
            if n < self.stage_names.len() {
                return Some(n);
            }
        }
        self.stage_names
            .iter()
            .position(|s| !s.is_empty() && s.eq_ignore_ascii_case(name))
    }

    async fn image_or_pull(&mut self, name: &str) -> Result<ImageRecord> {
        let images = self.d.images.clone();
        let n = name.to_string();
        let found = blocking(move || Ok(images.resolve(&n).ok())).await?;
        if let Some(i) = found {
            return Ok(i);
        }
        let r = super::pull::pull_reference(name, "")?;
        let mut rx = self
            .d
            .image_pull(super::PullRequest {
                from_image: r.name(),
                tag: r
                    .digest()
                    .map(|d| d.to_string())
                    .or_else(|| r.tag().map(str::to_string))
                    .unwrap_or_default(),
                platform: None,
                auth: self.req.registry_auth.get(r.domain()).cloned(),
            })
            .await
            .map_err(|e| {
                ApiError::new(
                    e.kind,
                    format!("failed to pull base image {name}: {}", e.message),
                )
            })?;
        while let Some(m) = rx.recv().await {
            if let Some(e) = m.error {
                return Err(ApiError::invalid(e));
            }
            if let Some(s) = m.status {
                if m.id.is_none() {
                    self.say(format!("{s}\n")).await;
                }
            }
        }
        let images = self.d.images.clone();
        let full = r.full();
        blocking(move || images.resolve(&full).map_err(image_err)).await
    }

    fn onbuild_triggers(&self, stage: &Stage) -> Result<Vec<Instr>> {
        let triggers = stage
            .config
            .config
            .as_ref()
            .and_then(|c| c.on_build.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        for t in triggers {
            out.extend(steps::parse_trigger(&t)?);
        }
        Ok(out)
    }

    /// Runs one instruction: cache lookup, then execution and commit.
    async fn step(&mut self, stage: &mut Stage, s: &Instr) -> Result<()> {
        let vars = stage.lookup();
        let step = steps::expand(s, &vars, self.escape)?;
        match step {
            Step::Arg(args) => {
                for (k, default) in args {
                    let v = match self.req.build_args.get(&k) {
                        Some(Some(v)) => {
                            self.used_args.insert(k.clone());
                            Some(v.clone())
                        }
                        _ => default,
                    };
                    if let Some(v) = v {
                        stage.args.insert(k, v);
                    } else {
                        stage.args.insert(k, String::new());
                    }
                }
                // ARG changes nothing in the image: Docker prints the parent again.
                self.commit_meta(stage, &s.text).await
            }
            Step::Run {
                argv,
                shell_form,
                mounts,
                network,
            } => {
                let argv = if shell_form {
                    let mut a = stage.shell();
                    a.extend(argv);
                    a
                } else {
                    argv
                };
                self.run(stage, &s.text, argv, mounts, network).await
            }
            Step::Copy(c) => self.copy(stage, &s.text, c).await,
            Step::Workdir(w) => {
                apply_config(stage, Step::Workdir(w))?;
                self.workdir(stage, &s.text).await
            }
            other => {
                apply_config(stage, other)?;
                self.commit_meta(stage, &s.text).await
            }
        }
    }

    /// Commits a metadata-only step (through the cache, so rebuilds give the same IDs).
    async fn commit_meta(&mut self, stage: &mut Stage, text: &str) -> Result<()> {
        let cfg = serde_json::to_string(&stage.config.config).unwrap_or_default();
        let key = cache::key(&stage.id(), text, &cfg);
        if self.cached(stage, &key).await? {
            return Ok(());
        }
        self.commit(stage, None, text).await?;
        self.d.cache_store(&key, &stage.id())?;
        Ok(())
    }

    /// Reuses the cached image for `key`, if any and allowed.
    async fn cached(&mut self, stage: &mut Stage, key: &str) -> Result<bool> {
        if self.req.no_cache {
            return Ok(false);
        }
        let Some(id) = self.d.cache_lookup(key).await? else {
            return Ok(false);
        };
        let images = self.d.images.clone();
        let img = blocking(move || images.resolve(&id).map_err(image_err)).await?;
        self.say(" ---> Using cache\n").await;
        self.say(format!(" ---> {}\n", short(&img.id.to_string())))
            .await;
        stage.config = img.config.clone();
        stage.image = Some(img);
        Ok(true)
    }

    /// Commits the stage's config (and `layer`, if any) as a new image on its current one.
    async fn commit(
        &mut self,
        stage: &mut Stage,
        layer: Option<PathBuf>,
        text: &str,
    ) -> Result<()> {
        let images = self.d.images.clone();
        let base = stage.image.clone();
        let config = stage.config.clone();
        let created_by = if text.is_empty() {
            String::new()
        } else if let Some(cmd) = text.strip_prefix("RUN ") {
            format!("/bin/sh -c {cmd}")
        } else {
            format!("/bin/sh -c #(nop) {text}")
        };
        let img = blocking(move || {
            images
                .commit_image(NewCommit {
                    base: base.as_ref(),
                    config,
                    layer: layer.as_deref(),
                    history: History {
                        created_by: Some(created_by),
                        ..Default::default()
                    },
                    tags: Vec::new(),
                })
                .map_err(image_err)
        })
        .await?;
        self.say(format!(" ---> {}\n", short(&img.id.to_string())))
            .await;
        stage.config = img.config.clone();
        stage.image = Some(img);
        Ok(())
    }

    async fn run(
        &mut self,
        stage: &mut Stage,
        text: &str,
        argv: Vec<String>,
        mounts: Vec<RunMount>,
        network: Option<String>,
    ) -> Result<()> {
        // Build args in effect are part of the command's environment and of its cache key.
        let mut env = stage.env();
        let mut arg_env = Vec::new();
        for (k, v) in &stage.args {
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(a, _)| a) == Some(k.as_str()))
            {
                arg_env.push(format!("{k}={v}"));
            }
        }
        env.extend(arg_env.iter().cloned());
        let key = cache::key(
            &stage.id(),
            &serde_json::to_string(&argv).unwrap_or_default(),
            &format!("{arg_env:?}{mounts:?}{network:?}{:?}", stage.config.config),
        );
        if self.cached(stage, &key).await? {
            return Ok(());
        }
        if stage.image.is_none() {
            return Err(ApiError::invalid(format!(
                "{text}: cannot run a command in an empty (scratch) image"
            )));
        }
        let (binds, _views) = self.mount_binds(&mounts).await?;
        let layer_path = self.next_file("layer");
        let cc = stage.config.config.clone().unwrap_or_default();
        let rs = RunStep {
            image: stage.id(),
            argv: argv.clone(),
            env,
            workdir: cc.working_dir.unwrap_or_default(),
            user: cc.user.unwrap_or_default(),
            network: network.unwrap_or_else(|| self.req.network.clone()),
            binds,
            memory: self.req.memory,
            memory_swap: self.req.memory_swap,
            cpu_shares: self.req.cpu_shares,
            cpu_quota: self.req.cpu_quota,
            cpu_period: self.req.cpu_period,
            cpuset_cpus: self.req.cpuset_cpus.clone(),
        };
        let shown = argv.join(" ");
        // `-q` shows nothing of the steps: their output goes nowhere.
        let quiet_sink = mpsc::channel(1).0;
        let tx = if self.req.quiet {
            &quiet_sink
        } else {
            &self.tx
        };
        let out = self.d.build_run(&rs, &shown, layer_path, tx).await?;
        self.commit(stage, out.layer, text).await?;
        self.d.cache_store(&key, &stage.id())?;
        Ok(())
    }

    /// Host directories for RUN mounts, as Binds entries.
    /// Also returns the image views that must stay mounted while the step runs.
    async fn mount_binds(&mut self, mounts: &[RunMount]) -> Result<(Vec<String>, Vec<RootView>)> {
        let mut binds = Vec::new();
        let mut views = Vec::new();
        for m in mounts {
            match m {
                RunMount::Cache { id, target } => {
                    let key = cache::key("cache-mount", id.as_deref().unwrap_or(target), "");
                    let dir = self
                        .d
                        .paths
                        .data_root
                        .join("builder/cache-mounts")
                        .join(&key[..32]);
                    std::fs::create_dir_all(&dir).map_err(|e| internal("create cache mount", e))?;
                    binds.push(format!("{}:{target}", dir.display()));
                }
                RunMount::Bind {
                    source,
                    target,
                    from,
                    rw: _,
                } => {
                    let root = match from {
                        None => self.context.clone(),
                        Some(f) => {
                            let v = self.root_of(f, "--mount from").await?;
                            let p = v.path.clone();
                            views.push(v);
                            p
                        }
                    };
                    let src = copy::resolve_in_root(&root, source, true)?;
                    if !src.exists() {
                        return Err(ApiError::invalid(format!(
                            "RUN --mount=type=bind: source {source} not found in the build context"
                        )));
                    }
                    // Writes through a bind mount must not reach the context or an image's layers,
                    // and berth has no copy-on-write bind yet: `rw` mounts read-only.
                    let mode = "ro";
                    binds.push(format!("{}:{target}:{mode}", src.display()));
                }
                RunMount::Secret {
                    id,
                    target,
                    required,
                } => {
                    let Some(data) = self.req.secrets.get(id) else {
                        if *required {
                            return Err(ApiError::invalid(format!(
                                "secret {id} not found: pass it with --secret id={id},src=<file>"
                            )));
                        }
                        continue;
                    };
                    let dir = self.dir.join("secrets");
                    std::fs::create_dir_all(&dir).map_err(|e| internal("secrets dir", e))?;
                    let f = dir.join(&cache::key("secret", id, "")[..16]);
                    std::fs::write(&f, data).map_err(|e| internal("write secret", e))?;
                    let target = target
                        .clone()
                        .unwrap_or_else(|| format!("/run/secrets/{id}"));
                    binds.push(format!("{}:{target}:ro", f.display()));
                }
                RunMount::Tmpfs { target } => {
                    let p = self.next_file("tmpfs");
                    std::fs::create_dir_all(&p).map_err(|e| internal("tmpfs mount dir", e))?;
                    binds.push(format!("{}:{target}", p.display()));
                }
            }
        }
        Ok((binds, views))
    }

    /// Layer dirs of an image (none for scratch), top first.
    async fn lowers(&self, img: Option<&ImageRecord>) -> Result<Vec<PathBuf>> {
        let Some(img) = img.cloned() else {
            return Ok(Vec::new());
        };
        let images = self.d.images.clone();
        blocking(move || images.lower_dirs(&img).map_err(image_err)).await
    }

    /// A read-only view of a stage's (by name or index) or an image's filesystem.
    async fn root_of(&mut self, f: &str, what: &str) -> Result<RootView> {
        let img = match self.stage_index(f) {
            Some(i) => self.stage_images[i]
                .clone()
                .ok_or_else(|| ApiError::invalid(format!("{what}={f}: stage was not built")))?,
            None => self.image_or_pull(f).await?,
        };
        let l = self.lowers(Some(&img)).await?;
        let at = self.next_file("root");
        RootView::open(&l, at)
    }

    /// WORKDIR: the config change, plus the directory itself when the image lacks it (as
    /// Docker creates it).
    async fn workdir(&mut self, stage: &mut Stage, text: &str) -> Result<()> {
        let wd = stage.workdir();
        let lowers = self.lowers(stage.image.as_ref()).await?;
        let rel = wd.trim_start_matches('/').to_string();
        let exists = rel.is_empty() || lowers.iter().any(|l| l.join(&rel).is_dir());
        let cfg = serde_json::to_string(&stage.config.config).unwrap_or_default();
        let key = cache::key(&stage.id(), text, &cfg);
        if self.cached(stage, &key).await? {
            return Ok(());
        }
        let layer = if exists {
            None
        } else {
            let path = self.next_file("layer");
            let p = path.clone();
            blocking(move || {
                let mut parents = Vec::new();
                let mut acc = String::new();
                for c in rel.split('/') {
                    if !acc.is_empty() {
                        acc.push('/');
                    }
                    acc.push_str(c);
                    if !lowers.iter().any(|l| l.join(&acc).exists()) {
                        parents.push(acc.clone());
                    }
                }
                let mut f = std::fs::File::create(&p).map_err(|e| internal("create layer", e))?;
                copy::write_layer(&[], &CopySpec::default(), &parents, &mut f)?;
                Ok(())
            })
            .await?;
            Some(path)
        };
        self.commit(stage, layer, text).await?;
        self.d.cache_store(&key, &stage.id())?;
        Ok(())
    }

    async fn copy(&mut self, stage: &mut Stage, text: &str, c: CopyStep) -> Result<()> {
        let CopyStep {
            mut sources,
            checksum,
            dest,
            from,
            chown,
            chmod,
            add,
            heredocs,
        } = c;
        let is_url = |s: &str| s.starts_with("http://") || s.starts_with("https://");
        let urls: Vec<String> = sources.iter().filter(|s| is_url(s)).cloned().collect();
        if !urls.is_empty() && !add {
            return Err(ApiError::invalid(
                "source can't be a URL for COPY; use ADD to fetch from a URL",
            ));
        }
        if !urls.is_empty() && (urls.len() != sources.len() || from.is_some()) {
            return Err(ApiError::not_implemented(
                "berth's ADD takes either URLs or local sources, not both",
            ));
        }
        let lowers = self.lowers(stage.image.as_ref()).await?;
        let chown_ids = match &chown {
            None => None,
            Some(u) => {
                let (uid, gid, _) = super::start::resolve_user(
                    u,
                    super::start::layered_file(&lowers, "etc/passwd").as_deref(),
                    super::start::layered_file(&lowers, "etc/group").as_deref(),
                )?;
                Some((uid, gid))
            }
        };
        // The source root: the context, or another stage's or image's filesystem.
        let mut view = None;
        let (root, excluded): (PathBuf, Excluder) = match &from {
            None if !urls.is_empty() => {
                // ADD <url>: fetched into a private dir, named by the URL's last path part,
                // never unpacked (as Docker does), mode 0600.
                let dir = self.next_file("urls");
                std::fs::create_dir_all(&dir).map_err(|e| internal("url dir", e))?;
                sources.clear();
                for u in &urls {
                    let path = u
                        .split(['?', '#'])
                        .next()
                        .unwrap_or(u)
                        .split_once("://")
                        .map(|(_, rest)| rest.split_once('/').map(|(_, p)| p).unwrap_or(""))
                        .unwrap_or("");
                    let name = path.rsplit('/').next().unwrap_or("").to_string();
                    if name.is_empty() || name == "." || name == ".." {
                        return Err(ApiError::invalid(format!(
                            "cannot determine filename from url: {u}"
                        )));
                    }
                    let dest = dir.join(&name);
                    self.say(format!("Downloading {u}\n")).await;
                    self.d
                        .registry
                        .fetch_url(u, &dest)
                        .await
                        .map_err(|e| ApiError::invalid(format!("ADD {u}: {e}")))?;
                    if let Some(c) = &checksum {
                        let got = copy::file_digest(&dest)?;
                        if &got != c {
                            return Err(ApiError::invalid(format!(
                                "ADD {u}: checksum mismatch: expected {c}, got {got}"
                            )));
                        }
                    }
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| internal("chmod download", e))?;
                    sources.push(name);
                }
                (dir, Arc::new(|_: &str| false))
            }
            None if !heredocs.is_empty() => {
                // COPY <<EOF: the heredocs become files of a private source dir.
                let dir = self.next_file("heredoc");
                std::fs::create_dir_all(&dir).map_err(|e| internal("heredoc dir", e))?;
                for (name, content) in &heredocs {
                    std::fs::write(dir.join(name), content)
                        .map_err(|e| internal("write heredoc", e))?;
                    sources.push(name.clone());
                }
                (dir, Arc::new(|_: &str| false))
            }
            None => (self.context.clone(), self.excluded.clone()),
            Some(f) => {
                let v = self.root_of(f, "COPY --from").await?;
                let p = v.path.clone();
                view = Some(v);
                (p, Arc::new(|_: &str| false))
            }
        };
        let spec = CopySpec {
            sources,
            dest,
            workdir: stage.workdir(),
            chown: chown_ids,
            chmod,
            // Downloads are never unpacked.
            extract_archives: add && urls.is_empty(),
        };
        let layer_path = self.next_file("layer");
        let lw = lowers.clone();
        let spec2 = spec.clone();
        let (items, digest, parents) = blocking(move || {
            let is_dir = |p: &str| {
                let rel = p.trim_start_matches('/');
                lw.iter()
                    .find_map(|l| l.join(rel).symlink_metadata().ok())
                    .map(|m| m.is_dir())
                    .unwrap_or(false)
            };
            let items = copy::plan(&root, &spec2, &is_dir, &*excluded)?;
            let digest = copy::content_digest(&items, &spec2)?;
            let mut parents = std::collections::BTreeSet::new();
            for it in &items {
                let mut p = Path::new(&it.dest).parent();
                while let Some(pp) = p {
                    let s = pp.to_string_lossy().to_string();
                    if s.is_empty() {
                        break;
                    }
                    let exists = lw.iter().any(|l| l.join(&s).symlink_metadata().is_ok());
                    if !exists && !items.iter().any(|i| i.dest == s) {
                        parents.insert(s);
                    }
                    p = pp.parent();
                }
            }
            Ok((items, digest, parents.into_iter().collect::<Vec<_>>()))
        })
        .await?;
        let key = cache::key(&stage.id(), text, &digest);
        if self.cached(stage, &key).await? {
            drop(view);
            return Ok(());
        }
        let lp = layer_path.clone();
        blocking(move || {
            let mut f = std::fs::File::create(&lp).map_err(|e| internal("create layer", e))?;
            copy::write_layer(&items, &spec, &parents, &mut f)?;
            f.sync_all().map_err(|e| internal("write layer", e))
        })
        .await?;
        drop(view);
        self.commit(stage, Some(layer_path), text).await?;
        self.d.cache_store(&key, &stage.id())?;
        Ok(())
    }
}

/// Applies a metadata instruction to the stage's config.
fn apply_config(stage: &mut Stage, step: Step) -> Result<()> {
    let shell = stage.shell();
    let cc = stage.cc();
    match step {
        Step::Env(pairs) => {
            let mut env = cc.env.clone().unwrap_or_default();
            for (k, v) in pairs {
                let entry = format!("{k}={v}");
                match env
                    .iter_mut()
                    .find(|e| e.split_once('=').map(|(a, _)| a) == Some(k.as_str()))
                {
                    Some(e) => *e = entry,
                    None => env.push(entry),
                }
            }
            cc.env = Some(env);
        }
        Step::Label(pairs) => {
            let labels = cc.labels.get_or_insert_with(Default::default);
            for (k, v) in pairs {
                labels.insert(k, v);
            }
        }
        Step::Cmd { argv, shell_form } => {
            cc.cmd = Some(if shell_form {
                let mut a = shell;
                a.extend(argv);
                a
            } else {
                argv
            });
        }
        Step::Entrypoint { argv, shell_form } => {
            cc.entrypoint = Some(if shell_form {
                let mut a = shell;
                a.extend(argv);
                a
            } else {
                argv
            });
            // A new ENTRYPOINT resets CMD inherited from the base, as in Docker.
            cc.cmd = None;
        }
        Step::Workdir(w) => {
            let base = cc.working_dir.clone().unwrap_or_else(|| "/".into());
            let w = if w.starts_with('/') {
                w
            } else {
                format!("{}/{w}", base.trim_end_matches('/'))
            };
            cc.working_dir = Some(copy::clean_image_path(&w));
        }
        Step::User(u) => cc.user = Some(u),
        Step::Expose(ports) => {
            let m = cc.exposed_ports.get_or_insert_with(Default::default);
            for p in ports {
                let p = if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                };
                m.insert(p, serde_json::json!({}));
            }
        }
        Step::Volume(vols) => {
            let m = cc.volumes.get_or_insert_with(Default::default);
            for v in vols {
                m.insert(v, serde_json::json!({}));
            }
        }
        Step::StopSignal(s) => cc.stop_signal = Some(s),
        Step::Healthcheck(h) => cc.healthcheck = Some(h),
        Step::Shell(s) => cc.shell = Some(s),
        Step::Onbuild(t) => cc.on_build.get_or_insert_with(Vec::new).push(t),
        Step::Maintainer(m) => stage.config.author = Some(m),
        Step::Arg(_) | Step::Run { .. } | Step::Copy(_) => {}
    }
    Ok(())
}
