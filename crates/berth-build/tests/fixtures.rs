//! Fixture-driven tests: Dockerfiles with expected dumps (`fixtures/parse/<name>/`), expected
//! errors (`fixtures/parse-errors/<name>/`), expansion tables (`expand*.txt`, `words.txt`)
//! and `.dockerignore` tables (`dockerignore.txt`). `UPDATE_FIXTURES=1` rewrites the
//! expected files of the Dockerfile fixtures (review the diff against Docker's behaviour).

use berth_build::dockerignore::Matcher;
use berth_build::{dump, instructions, parser, shell, Plan, PlanOptions, Source};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn dirs(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(fixtures().join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn check(dir: &Path, got: &str) -> Option<String> {
    let exp = dir.join("expected");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&exp, got).unwrap();
        return None;
    }
    let want = std::fs::read_to_string(&exp).unwrap_or_default();
    (got != want).then(|| format!("fixture {}:\n--- want\n{want}--- got\n{got}", dir.display()))
}

#[test]
fn parse_fixtures() {
    let mut failures = Vec::new();
    for d in dirs("parse") {
        let text = std::fs::read_to_string(d.join("Dockerfile")).unwrap();
        let ast =
            parser::parse(&text, "Dockerfile").unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let ls =
            instructions(&ast, "Dockerfile").unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let mut got = format!("escape {:?} syntax {:?}\n", ast.escape, ast.syntax);
        got.push_str(&dump(&ls));
        failures.extend(check(&d, &got));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_error_fixtures() {
    let mut failures = Vec::new();
    for d in dirs("parse-errors") {
        let text = std::fs::read_to_string(d.join("Dockerfile")).unwrap();
        let got = match Plan::new(&text, "Dockerfile", &PlanOptions::default()) {
            Ok(_) => format!("no error for {}\n", d.display()),
            Err(e) => format!("{e}\n"),
        };
        failures.extend(check(&d, &got));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn table_env() -> BTreeMap<String, String> {
    [
        ("PWD", "/home"),
        ("A", "a"),
        ("B", "b"),
        ("EMPTY", ""),
        ("SPACED", "a b  c"),
        ("PATHV", "/usr/local/bin:/usr/bin"),
        ("FILE", "archive.tar.gz"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Table lines: `input | expected`, `expected` being the result, `ERROR`, or
/// `ERROR: <exact message>`. `#` lines are comments.
fn run_table(name: &str, escape: char) {
    let env = table_env();
    let table = std::fs::read_to_string(fixtures().join(name)).unwrap();
    let mut failures = Vec::new();
    for (n, line) in table.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (input, want) = match line.rsplit_once(" | ") {
            Some((i, w)) => (i, w),
            None => (line.strip_suffix(" |").expect("a | separator"), ""),
        };
        let got = shell::process_word(input, &env, escape);
        let ok = match (want.strip_prefix("ERROR"), &got) {
            (Some(""), Err(_)) => true,
            (Some(msg), Err(e)) => msg.strip_prefix(": ") == Some(e.to_string().as_str()),
            (None, Ok(g)) => g == want,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{name}:{}: {input:?}: want {want:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn expansion_table() {
    run_table("expand.txt", '\\');
}

#[test]
fn expansion_table_backtick() {
    run_table("expand-backtick.txt", '`');
}

/// `words.txt`: `input | ["json", "array"]` of the words `process_words` yields.
#[test]
fn words_table() {
    let env = table_env();
    let table = std::fs::read_to_string(fixtures().join("words.txt")).unwrap();
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (input, want) = line.rsplit_once(" | ").unwrap();
        let want: Vec<String> = serde_json::from_str(want).unwrap();
        let got = shell::process_words(input, &env, '\\').unwrap();
        assert_eq!(got, want, "{input:?}");
    }
}

/// `dockerignore.txt`: `patterns (joined by ;) | path | excluded | can skip dir (optional)`.
#[test]
fn dockerignore_table() {
    let table = std::fs::read_to_string(fixtures().join("dockerignore.txt")).unwrap();
    let mut failures = Vec::new();
    for (n, line) in table.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(" | ").collect();
        let m = Matcher::from_file(&cols[0].replace(';', "\n")).unwrap();
        let excluded = m.is_excluded(cols[1]);
        if excluded.to_string() != cols[2].trim() {
            failures.push(format!("line {}: {line}: excluded={excluded}", n + 1));
        }
        if let Some(skip) = cols.get(3) {
            let got = m.can_skip_dir(cols[1]);
            if got.to_string() != skip.trim() {
                failures.push(format!("line {}: {line}: can_skip_dir={got}", n + 1));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn opts(target: Option<&str>, args: &[(&str, &str)]) -> PlanOptions {
    PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: target.map(str::to_string),
        builtin_args: [("BUILDPLATFORM", "linux/amd64"), ("TARGETARCH", "amd64")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

const MULTI: &str = "\
ARG BASE=busybox
ARG TAG
FROM ${BASE}:${TAG:-1} AS deps
RUN a
FROM scratch AS unused
FROM --platform=$BUILDPLATFORM busybox AS tools
FROM busybox AS app
COPY --from=deps /x /x
RUN --mount=type=bind,from=tools,target=/t b
FROM app AS final
COPY --from=alpine:3 /etc/os-release /
ARG TAG
ARG LOCAL=l-${TAG}
RUN c
";

#[test]
fn multi_stage_target_and_order() {
    let p = Plan::new(MULTI, "Dockerfile", &opts(None, &[])).unwrap();
    assert_eq!(p.stages.len(), 5);
    assert_eq!(p.stages[0].base, Source::Image("busybox:1".into()));
    assert_eq!(p.stages[1].base, Source::Image("scratch".into()));
    assert_eq!(p.stages[2].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(p.stages[4].base, Source::Stage(3));
    assert_eq!(p.target, 4);
    assert_eq!(p.order, [0, 2, 3, 4], "the unused stage is skipped");
    assert_eq!(
        p.resolve("alpine:3", 11).unwrap(),
        Source::Image("alpine:3".into()),
        "an unknown name is an image"
    );
    assert_eq!(p.resolve("DEPS", 11).unwrap(), Source::Stage(0));
    assert_eq!(p.resolve("1", 11).unwrap(), Source::Stage(1));
    assert_eq!(
        p.resolve("7", 11).unwrap_err().to_string(),
        "Dockerfile:11: invalid stage index 7"
    );
    let p = Plan::new(MULTI, "Dockerfile", &opts(Some("deps"), &[])).unwrap();
    assert_eq!(p.order, [0]);
    let p = Plan::new(MULTI, "Dockerfile", &opts(Some("App"), &[])).unwrap();
    assert_eq!(p.order, [0, 2, 3]);
}

#[test]
fn unknown_target() {
    let e = Plan::new(MULTI, "Dockerfile", &opts(Some("nope"), &[])).unwrap_err();
    assert_eq!(e.to_string(), "target stage \"nope\" could not be found");
}

#[test]
fn global_args_and_build_arg_overrides() {
    let p = Plan::new(
        MULTI,
        "Dockerfile",
        &opts(
            None,
            &[
                ("TAG", "2"),
                ("BASE", "alpine"),
                ("HTTP_PROXY", "http://p"),
                ("X", "1"),
            ],
        ),
    )
    .unwrap();
    assert_eq!(p.stages[0].base, Source::Image("alpine:2".into()));
    assert_eq!(
        p.global_args,
        [
            ("BASE".to_string(), Some("alpine".to_string())),
            ("TAG".to_string(), Some("2".to_string()))
        ]
    );
    assert_eq!(
        p.proxy_env(),
        [("HTTP_PROXY".to_string(), "http://p".to_string())]
    );
    assert_eq!(p.unused_build_args(), ["X"]);
    // Inside a stage: a redeclared global takes the global value, a build arg wins over a
    // default, and a default is used otherwise.
    assert_eq!(p.arg_value("TAG", None).as_deref(), Some("2"));
    assert_eq!(p.arg_value("LOCAL", Some("d".into())).as_deref(), Some("d"));
    assert_eq!(p.arg_value("X", Some("d".into())).as_deref(), Some("1"));
    assert_eq!(p.arg_value("UNDECLARED", None), None);
    assert_eq!(p.arg_value("TARGETARCH", None).as_deref(), Some("amd64"));
}

#[test]
fn global_args_are_not_visible_in_stages_without_redeclaring() {
    let df = "ARG V=1\nFROM busybox\nWORKDIR /w$V\nARG V\nWORKDIR /w$V\n";
    let p = Plan::new(df, "Dockerfile", &PlanOptions::default()).unwrap();
    let st = &p.stages[0];
    // The builder's stage environment: empty until `ARG V` brings the global value in.
    let mut env: Vec<(String, String)> = Vec::new();
    let mut dirs = Vec::new();
    for l in &st.instructions {
        match p.expand(l, &env).unwrap() {
            berth_build::Instruction::Workdir(d) => dirs.push(d),
            berth_build::Instruction::Arg(ds) => {
                for d in ds {
                    if let Some(v) = p.arg_value(&d.name, d.default) {
                        env.push((d.name, v));
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!(dirs, ["/w", "/w1"]);
}

#[test]
fn expansion_errors_name_the_line() {
    let df = "FROM busybox\nWORKDIR ${NOPE:?needs a value}\n";
    let p = Plan::new(df, "Dockerfile", &PlanOptions::default()).unwrap();
    let e = p.expand(
        &p.stages[0].instructions[0],
        &BTreeMap::<String, String>::new(),
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "Dockerfile:2: failed to process \"${NOPE:?needs a value}\": NOPE: needs a value"
    );
    let e = Plan::new("FROM ${NOPE:?x}\n", "Dockerfile", &PlanOptions::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Dockerfile:1: failed to process \"${NOPE:?x}\": NOPE: x"
    );
}

#[test]
fn circular_copy_from() {
    let df = "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n";
    let e = Plan::new(df, "Dockerfile", &PlanOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("circular dependency detected on stage"),
        "{e}"
    );
    // A forward reference without a cycle is fine (BuildKit builds a graph).
    let df = "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n";
    let p = Plan::new(df, "Dockerfile", &opts(Some("a"), &[])).unwrap();
    assert_eq!(p.order, [1, 0]);
}
