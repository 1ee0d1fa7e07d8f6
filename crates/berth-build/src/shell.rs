//! The shell-word lexer and Docker's variable expansion (buildkit's `shell/lex.go` rules):
//! single quotes are literal, double quotes allow `$` expansions and escape only `"`, `$` and
//! the escape character, the escape character (`\` or `` ` ``) escapes anything outside quotes,
//! and `$A ${A} ${A:-x} ${A-x} ${A:+x} ${A+x} ${A:?msg} ${A?msg} ${A#p} ${A##p} ${A%p}
//! ${A%%p} ${A/p/r} ${A//p/r}` are substituted.
//!
//! [`process_word`] yields one string (spaces kept); [`process_words`] splits the result on
//! unquoted whitespace, including whitespace that came out of an unquoted variable.

use crate::BuildError;
use std::collections::{BTreeMap, HashMap};

/// Looks up a variable: `None` when unset, `Some("")` when set but empty.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Lookup for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Lookup for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

/// `KEY=value` pairs, the last one of a name winning (a container's `Env` list).
impl Lookup for [(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Lookup for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        Lookup::get(self.as_slice(), name)
    }
}

/// No variables at all.
pub struct NoEnv;

impl Lookup for NoEnv {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
}

/// How the lexer treats quotes, escapes and unset variables.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset: bool,
    /// Treat quotes as ordinary characters (heredoc bodies).
    pub skip_quotes: bool,
}

/// Words being collected: whitespace from unquoted text and unquoted expansions splits them.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }
    fn add_str(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }
    fn add_raw_str(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a dyn Lookup,
    opts: Options,
    raw_escapes: bool,
}

type Res<T> = Result<T, String>;

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.env.get(name)
    }

    /// Processes up to `stop` (consumed) or the end; returns the text and its words.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_until_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_until_inner(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut out = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((out, words.finish()));
            }
            match c {
                '$' => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                    words.add_str(&v);
                }
                '\'' if !self.opts.skip_quotes => {
                    let v = self.single_quote()?;
                    out.push_str(&v);
                    words.add_raw_str(&v);
                }
                '"' if !self.opts.skip_quotes => {
                    let v = self.double_quote()?;
                    out.push_str(&v);
                    words.add_raw_str(&v);
                }
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            out.push(c);
                        }
                        // An escape at the very end is dropped.
                        let Some(n) = self.next() else { break };
                        words.add_raw_char(n);
                        out.push(n);
                    } else {
                        words.add_char(c);
                        out.push(c);
                    }
                }
            }
        }
        if let Some(s) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {s}"
            ));
        }
        Ok((out, words.finish()))
    }

    fn single_quote(&mut self) -> Res<String> {
        let mut out = String::new();
        self.pos += 1;
        if self.opts.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.opts.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Res<String> {
        let mut out = String::new();
        self.pos += 1;
        if self.opts.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.opts.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    let mut c = c;
                    if c == self.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                c = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if n.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    n.push(d);
                    self.pos += 1;
                }
                return n;
            }
            if n.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            n.push(c);
            self.pos += 1;
        }
        n
    }

    /// The word after a `${NAME` modifier, up to the closing brace.
    fn brace_word(&mut self, raw_escapes: bool) -> Res<String> {
        match self.process_until(Some('}'), raw_escapes) {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() => Err("syntax error: missing '}'".into()),
            Err(e) => Err(e),
        }
    }

    fn dollar(&mut self) -> Res<String> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.name();
        let Some(mut op) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut written = op.to_string();
        match op {
            '}' => Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.opts.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let colon = op == ':';
                if colon {
                    op = self.next().unwrap_or('}');
                    written.push(op);
                }
                let mut word = self.brace_word(op == '#' || op == '%')?;
                let val = self.lookup(&name);
                let Some(value) = val
                    .clone()
                    .or_else(|| (!self.opts.skip_unset).then(String::new))
                else {
                    return Ok(format!("${{{name}{written}{word}}}"));
                };
                let unset = val.is_none() || (colon && value.is_empty());
                match op {
                    '-' => Ok(if unset { word } else { value }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if val.is_none() || (colon && value.is_empty()) {
                            let msg = if !word.is_empty() {
                                word
                            } else if val.is_none() {
                                "is not allowed to be unset".into()
                            } else {
                                "is not allowed to be empty".into()
                            };
                            Err(format!("{name}: {msg}"))
                        } else {
                            Ok(value)
                        }
                    }
                    '#' | '%' => {
                        let longest = word.starts_with(op);
                        if longest {
                            word.remove(0);
                        }
                        let pat = parse_pattern(&word)?;
                        Ok(trim(&value, &pat, op == '#', longest))
                    }
                    _ => Err(format!("unsupported modifier ({written}) in substitution")),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pattern = match self.process_until(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(_) if self.peek().is_none() => {
                        return Err("syntax error: missing '/' in ${}".into())
                    }
                    Err(e) => return Err(e),
                };
                let repl = self.brace_word(true)?;
                let Some(value) = self.lookup(&name) else {
                    if self.opts.skip_unset {
                        return Ok(format!("${{{name}/{pattern}/{repl}}}"));
                    }
                    return Ok(String::new());
                };
                let pat = parse_pattern(&pattern)?;
                Ok(replace(&value, &pat, &repl, all))
            }
            _ => Err(format!("unsupported modifier ({written}) in substitution")),
        }
    }
}

/// One element of a `${A#pattern}` shell pattern.
#[derive(Debug, Clone, PartialEq)]
enum PatElem {
    Star,
    Any,
    Lit(char),
}

fn parse_pattern(p: &str) -> Res<Vec<PatElem>> {
    let mut out = Vec::new();
    let mut it = p.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => out.push(PatElem::Star),
            '?' => out.push(PatElem::Any),
            '\\' => match it.peek().copied() {
                // `\}` and `\/` only protect the brace syntax.
                Some(n @ ('}' | '/')) => {
                    it.next();
                    out.push(PatElem::Lit(n));
                }
                Some(n @ ('*' | '?' | '\\')) => {
                    it.next();
                    out.push(PatElem::Lit(n));
                }
                Some(n) => {
                    return Err(format!(
                        "invalid pattern ({p}) in substitution: invalid escape '\\{n}'"
                    ))
                }
                None => out.push(PatElem::Lit('\\')),
            },
            c => out.push(PatElem::Lit(c)),
        }
    }
    Ok(out)
}

fn pat_match(p: &[PatElem], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(PatElem::Star) => (0..=s.len()).any(|i| pat_match(&p[1..], &s[i..])),
        Some(PatElem::Any) => !s.is_empty() && pat_match(&p[1..], &s[1..]),
        Some(PatElem::Lit(c)) => s.first() == Some(c) && pat_match(&p[1..], &s[1..]),
    }
}

/// `${A#p}` (prefix) and `${A%p}` (suffix), shortest or longest match removed.
fn trim(val: &str, pat: &[PatElem], prefix: bool, longest: bool) -> String {
    let s: Vec<char> = val.chars().collect();
    let n = s.len();
    let mut cuts: Vec<usize> = (0..=n).collect();
    if prefix == longest {
        cuts.reverse();
    }
    for i in cuts {
        let hit = if prefix {
            pat_match(pat, &s[..i])
        } else {
            pat_match(pat, &s[i..])
        };
        if hit {
            let rest: String = if prefix { &s[i..] } else { &s[..i] }.iter().collect();
            return rest;
        }
    }
    val.to_string()
}

/// `${A/p/r}`: the leftmost, longest match replaced (every match with `//`).
fn replace(val: &str, pat: &[PatElem], repl: &str, all: bool) -> String {
    let s: Vec<char> = val.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut done = false;
    while i <= s.len() {
        if !done {
            if let Some(end) = (i..=s.len()).rev().find(|&e| pat_match(pat, &s[i..e])) {
                out.push_str(repl);
                done = !all;
                if end > i {
                    i = end;
                    continue;
                }
            }
        }
        if i < s.len() {
            out.push(s[i]);
        }
        i += 1;
    }
    out
}

fn run(
    word: &str,
    env: &dyn Lookup,
    escape: char,
    opts: Options,
) -> Result<(String, Vec<String>), BuildError> {
    let mut l = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        env,
        opts,
        raw_escapes: opts.raw_escapes,
    };
    l.process_until(None, opts.raw_escapes)
        .map_err(|msg| BuildError::Expand {
            word: word.to_string(),
            msg,
        })
}

pub(crate) fn process_with(
    word: &str,
    env: &dyn Lookup,
    escape: char,
    opts: Options,
) -> Result<(String, Vec<String>), BuildError> {
    run(word, env, escape, opts)
}

/// Expands one word: quotes removed, variables substituted, whitespace kept.
pub fn process_word(word: &str, env: &dyn Lookup, escape: char) -> Result<String, BuildError> {
    Ok(run(word, env, escape, Options::default())?.0)
}

/// Expands and splits into words on unquoted whitespace (also whitespace that came from an
/// unquoted variable); empty words are dropped.
pub fn process_words(s: &str, env: &dyn Lookup, escape: char) -> Result<Vec<String>, BuildError> {
    Ok(run(s, env, escape, Options::default())?.1)
}

/// Expands a heredoc body written to a file (`COPY <<EOF`): variables and escapes are
/// processed, quotes are kept as written.
pub fn expand_heredoc(body: &str, env: &dyn Lookup, escape: char) -> Result<String, BuildError> {
    let opts = Options {
        skip_quotes: true,
        ..Options::default()
    };
    Ok(run(body, env, escape, opts)?.0)
}

/// Splits on unquoted whitespace keeping quotes and escapes as written (Docker's `parseWords`
/// for `ENV`/`LABEL`/`ARG` lists, whose parts are expanded later one by one).
pub fn split_raw(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if quote.is_none() && c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        cur.push(c);
        if c == escape && quote != Some('\'') {
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if Some(c) == quote {
            quote = None;
        } else if quote.is_none() && (c == '"' || c == '\'') {
            quote = Some(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![("A".into(), "a b".into()), ("E".into(), String::new())]
    }

    #[test]
    fn words_split_unquoted_expansions_only() {
        assert_eq!(
            process_words("x $A \"$A\" ''", &env(), '\\').unwrap(),
            ["x", "a", "b", "a b"]
        );
        assert_eq!(process_word(" x  $A ", &env(), '\\').unwrap(), " x  a b ");
    }

    #[test]
    fn error_messages() {
        let e = process_word("${Z:?must be set}", &env(), '\\').unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to process \"${Z:?must be set}\": Z: must be set"
        );
        let e = process_word("${E:?}", &env(), '\\').unwrap_err();
        assert!(
            e.to_string().ends_with("E: is not allowed to be empty"),
            "{e}"
        );
        let e = process_word("${Z?}", &env(), '\\').unwrap_err();
        assert!(
            e.to_string().ends_with("Z: is not allowed to be unset"),
            "{e}"
        );
    }

    #[test]
    fn raw_modes() {
        let o = Options {
            raw_quotes: true,
            raw_escapes: true,
            skip_unset: true,
            skip_quotes: false,
        };
        let (s, _) = process_with("'a' \"b\" \\c $Z ${Z:-x}", &NoEnv, '\\', o).unwrap();
        assert_eq!(s, "'a' \"b\" \\c $Z ${Z:-x}");
    }

    #[test]
    fn split_raw_keeps_quotes() {
        assert_eq!(
            split_raw(r#"a="b c" d='e \' f=g\ h"#, '\\'),
            [r#"a="b c""#, r"d='e \'", r"f=g\ h"]
        );
    }
}
