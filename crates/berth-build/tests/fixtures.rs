//! Fixture-driven tests: Dockerfiles with expected dumps, expected errors, and an expansion
//! table. `UPDATE_FIXTURES=1` rewrites the expected files (review the diff against Docker).

use berth_build::{dump, instructions, parser, shell};
use std::collections::HashMap;
use std::path::Path;

fn dirs(kind: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut v: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn check(dir: &Path, got: &str) {
    let exp = dir.join("expected");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&exp, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&exp).unwrap_or_default();
    assert_eq!(got, want, "fixture {}", dir.display());
}

#[test]
fn parse_fixtures() {
    for d in dirs("parse") {
        let text = std::fs::read_to_string(d.join("Dockerfile")).unwrap();
        let ast =
            parser::parse(&text, "Dockerfile").unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let ls =
            instructions(&ast, "Dockerfile").unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let mut got = format!("escape {:?} syntax {:?}\n", ast.escape, ast.syntax);
        got.push_str(&dump(&ls));
        check(&d, &got);
    }
}

#[test]
fn parse_error_fixtures() {
    for d in dirs("parse-errors") {
        let text = std::fs::read_to_string(d.join("Dockerfile")).unwrap();
        let r = berth_build::plan(&text, "Dockerfile", &Default::default(), "");
        let got = match r {
            Ok(_) => panic!("{}: parsed without error", d.display()),
            Err(e) => format!("{e}\n"),
        };
        check(&d, &got);
    }
}

#[test]
fn expansion_table() {
    let env: HashMap<String, String> = [
        ("PWD", "/home"),
        ("A", "a"),
        ("B", "b"),
        ("EMPTY", ""),
        ("SPACED", "a b"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let table = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/expand.txt"),
    )
    .unwrap();
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (input, want) = line.rsplit_once(" |").unwrap();
        let want = want.trim();
        let got = shell::process_word(input, &env, '\\');
        if want == "ERROR" {
            assert!(got.is_err(), "{input:?} should fail, got {got:?}");
        } else {
            assert_eq!(got.as_deref(), Ok(want), "{input:?}");
        }
    }
    // Backtick as the escape character.
    assert_eq!(shell::process_word("a` b", &env, '`').unwrap(), "a b");
    assert_eq!(
        shell::process_word("c:\\dir", &env, '`').unwrap(),
        "c:\\dir"
    );
    assert_eq!(
        shell::process_words("a \"b c\" d", &env, '\\').unwrap(),
        ["a", "b c", "d"]
    );
}

#[test]
fn stage_planning() {
    let df = "ARG BASE=busybox\nARG TAG\nFROM ${BASE}:${TAG:-1} AS deps\nRUN a\nFROM scratch AS unused\nFROM busybox AS app\nCOPY --from=deps /x /x\nFROM app AS final\nRUN b\n";
    let none = Default::default();
    let p = berth_build::plan(df, "Dockerfile", &none, "").unwrap();
    assert_eq!(p.stages.len(), 4);
    assert_eq!(p.stages[0].base, "busybox:1");
    assert_eq!(p.order, [0, 2, 3], "the unused stage is skipped");
    let p = berth_build::plan(df, "Dockerfile", &none, "deps").unwrap();
    assert_eq!(p.order, [0]);
    let mut args = std::collections::BTreeMap::new();
    args.insert("TAG".to_string(), Some("2".to_string()));
    args.insert("BASE".to_string(), Some("alpine".to_string()));
    let p = berth_build::plan(df, "Dockerfile", &args, "").unwrap();
    assert_eq!(p.stages[0].base, "alpine:2");
    assert_eq!(p.global_args["TAG"], "2");
    let e = berth_build::plan(df, "Dockerfile", &none, "nope").unwrap_err();
    assert_eq!(e.to_string(), "target stage \"nope\" could not be found");
    let e =
        berth_build::plan("FROM a\nCOPY --from=1 /a /b\n", "Dockerfile", &none, "").unwrap_err();
    assert!(
        e.to_string()
            .contains("refers to current or future build stage"),
        "{e}"
    );
}
