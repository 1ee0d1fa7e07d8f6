//! The shell-word lexer and Docker's variable expansion: quotes (single: literal; double:
//! expansions happen), the escape character (`\` or `` ` ``), and `$A ${A} ${A:-x} ${A-x}
//! ${A:+x} ${A+x} ${A:?msg} ${A?msg}` plus the trimming forms `${A#p} ${A##p} ${A%p} ${A%%p}`.

use crate::BuildError;

/// Looks up a variable.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Lookup for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

impl Lookup for std::collections::BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::BTreeMap::get(self, name).cloned()
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a dyn Lookup,
}

fn err(m: impl Into<String>) -> BuildError {
    BuildError::Expand(m.into())
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    /// Words, split on unquoted whitespace (`split`) or one word (`!split`).
    fn words(&mut self, split: bool) -> Result<Vec<String>, BuildError> {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        while let Some(c) = self.peek() {
            if split && c.is_whitespace() {
                self.pos += 1;
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            in_word = true;
            if c == self.escape {
                self.pos += 1;
                match self.next() {
                    Some(n) => cur.push(n),
                    None => cur.push(c),
                }
            } else if c == '\'' {
                self.pos += 1;
                loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(err(
                            "unexpected end of statement while looking for matching single-quote",
                        )),
                    }
                }
            } else if c == '"' {
                self.pos += 1;
                loop {
                    match self.peek() {
                        Some('"') => {
                            self.pos += 1;
                            break;
                        }
                        Some('$') => cur.push_str(&self.dollar()?),
                        Some(x) if x == self.escape => {
                            self.pos += 1;
                            match self.next() {
                                // Inside double quotes only these are escapable.
                                Some(n) if n == '"' || n == '$' || n == self.escape => cur.push(n),
                                Some(n) => {
                                    cur.push(x);
                                    cur.push(n);
                                }
                                None => return Err(err("unexpected end of statement while looking for matching double-quote")),
                            }
                        }
                        Some(x) => {
                            self.pos += 1;
                            cur.push(x);
                        }
                        None => return Err(err(
                            "unexpected end of statement while looking for matching double-quote",
                        )),
                    }
                }
            } else if c == '$' {
                let v = self.dollar()?;
                cur.push_str(&v);
            } else {
                self.pos += 1;
                cur.push(c);
            }
        }
        if in_word || !split {
            words.push(cur);
        }
        Ok(words)
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    /// A `$…` expansion at the cursor.
    fn dollar(&mut self) -> Result<String, BuildError> {
        self.pos += 1; // '$'
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err(err("missing ':' in substitution"));
                }
                match self.next() {
                    Some('}') => Ok(self.env.get(&name).unwrap_or_default()),
                    Some(':') => {
                        let op = self.next().ok_or_else(|| {
                            err(format!("missing '}}' in substitution of {name}"))
                        })?;
                        let word = self.until_brace()?;
                        let val = self.env.get(&name);
                        let set_nonempty = val.as_deref().map(|v| !v.is_empty()).unwrap_or(false);
                        match op {
                            '-' => Ok(if set_nonempty {
                                val.unwrap_or_default()
                            } else {
                                word
                            }),
                            '+' => Ok(if set_nonempty { word } else { String::new() }),
                            '?' => {
                                if set_nonempty {
                                    Ok(val.unwrap_or_default())
                                } else {
                                    let msg = if word.is_empty() {
                                        "is not allowed to be unset".into()
                                    } else {
                                        word
                                    };
                                    Err(err(format!("{name}: {msg}")))
                                }
                            }
                            other => Err(err(format!(
                                "unsupported modifier ({other}) in substitution"
                            ))),
                        }
                    }
                    Some(op @ ('-' | '+' | '?')) => {
                        let word = self.until_brace()?;
                        let val = self.env.get(&name);
                        match op {
                            '-' => Ok(val.unwrap_or(word)),
                            '+' => Ok(if val.is_some() { word } else { String::new() }),
                            _ => val.ok_or_else(|| {
                                let msg = if word.is_empty() {
                                    "is not allowed to be unset".into()
                                } else {
                                    word
                                };
                                err(format!("{name}: {msg}"))
                            }),
                        }
                    }
                    Some(op @ ('#' | '%')) => {
                        let longest = self.peek() == Some(op);
                        if longest {
                            self.pos += 1;
                        }
                        let pat = self.until_brace()?;
                        let val = self.env.get(&name).unwrap_or_default();
                        Ok(trim(&val, &pat, op == '#', longest))
                    }
                    Some('/') => {
                        let rest = self.until_brace()?;
                        let (pat, repl) = rest.split_once('/').unwrap_or((&rest, ""));
                        let val = self.env.get(&name).unwrap_or_default();
                        Ok(if pat.is_empty() {
                            val
                        } else {
                            val.replacen(pat, repl, 1)
                        })
                    }
                    _ => Err(err(format!("missing '}}' in substitution of {name}"))),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok(self.env.get(&name).unwrap_or_default())
            }
            Some(c) if c.is_ascii_digit() => {
                self.pos += 1;
                Ok(String::new())
            }
            _ => Ok("$".into()),
        }
    }

    /// The word inside `${A:-word}`, itself expanded, up to the closing brace.
    fn until_brace(&mut self) -> Result<String, BuildError> {
        let mut out = String::new();
        loop {
            match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => {
                    self.pos += 1;
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some('\'') => {
                    self.pos += 1;
                    while let Some(c) = self.next() {
                        if c == '\'' {
                            break;
                        }
                        out.push(c);
                    }
                }
                Some('"') => {
                    self.pos += 1;
                }
                Some(c) => {
                    self.pos += 1;
                    out.push(c);
                }
                None => return Err(err("missing '}' in substitution")),
            }
        }
    }
}

/// `${A#pat}` and friends with shell glob patterns (`*`, `?`).
fn trim(val: &str, pat: &str, prefix: bool, longest: bool) -> String {
    let m = |s: &str| crate::dockerignore::glob_match(pat.as_bytes(), s.as_bytes());
    let idx: Vec<usize> = val
        .char_indices()
        .map(|(i, _)| i)
        .chain([val.len()])
        .collect();
    if prefix {
        let cands: Box<dyn Iterator<Item = &usize>> = if longest {
            Box::new(idx.iter().rev())
        } else {
            Box::new(idx.iter())
        };
        for &i in cands {
            if m(&val[..i]) {
                return val[i..].to_string();
            }
        }
    } else {
        let cands: Box<dyn Iterator<Item = &usize>> = if longest {
            Box::new(idx.iter())
        } else {
            Box::new(idx.iter().rev())
        };
        for &i in cands {
            if m(&val[i..]) {
                return val[..i].to_string();
            }
        }
    }
    val.to_string()
}

/// Expands one word (quotes removed, variables substituted).
pub fn process_word(word: &str, env: &dyn Lookup, escape: char) -> Result<String, BuildError> {
    let mut l = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        escape,
        env,
    };
    Ok(l.words(false)?.into_iter().next().unwrap_or_default())
}

/// Expands and splits into words on unquoted whitespace.
pub fn process_words(s: &str, env: &dyn Lookup, escape: char) -> Result<Vec<String>, BuildError> {
    let mut l = Lexer {
        chars: s.chars().collect(),
        pos: 0,
        escape,
        env,
    };
    l.words(true)
}

/// Splits on unquoted whitespace keeping quotes and escapes (for `K=V` lists that are expanded
/// later, value by value).
pub fn split_raw(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c.is_whitespace() {
                    if !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                } else {
                    cur.push(c);
                    if c == escape {
                        if let Some(n) = chars.next() {
                            cur.push(n);
                        }
                    } else if c == '"' || c == '\'' {
                        quote = Some(c);
                    }
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
