//! Output formatting shared by the commands: Docker's human units, Go's tabwriter layout and
//! a subset of Go's text/template good enough for `--format`.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

// ---------------------------------------------------------------------------------------------
// Human units (go-units)

pub use berth_api::units::human_duration;

/// Go's `%.{prec}g`, which switches to exponent form when the exponent reaches the precision.
pub fn go_g(v: f64, prec: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", prec.saturating_sub(1), v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// go-units `HumanSizeWithPrecision(size, 3)`: decimal units, "4.26MB".
pub fn human_size(size: f64) -> String {
    human_size_prec(size, 3)
}

/// go-units `CustomSize` with decimal abbreviations and the given precision.
pub fn human_size_prec(size: f64, prec: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(s, prec), UNITS[i])
}

/// Docker's `TruncateID`: drop an algorithm prefix, keep 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    id.chars().take(12).collect()
}

/// Docker's `Ellipsis`: at most `max` characters, the last one "…" when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Go's text/tabwriter with docker's settings (minwidth 10, tabwidth 1, padding 3, ' ', 0)

/// Lays out tab-separated text like `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
pub fn tabwrite(text: &str) -> String {
    tabwrite_with(text, 10, 3)
}

pub fn tabwrite_with(text: &str, minwidth: usize, padding: usize) -> String {
    let mut lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    // A trailing newline ends the last line rather than starting an empty one.
    let trailing = text.ends_with('\n');
    if trailing {
        lines.pop();
    }
    let mut out = String::new();
    let mut widths = Vec::new();
    tw_format(
        &lines,
        0,
        lines.len(),
        &mut widths,
        minwidth,
        padding,
        &mut out,
    );
    if !trailing && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn tw_format(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        tw_write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut w = minwidth;
        while this < line1 {
            let line = &lines[this];
            if column + 1 >= line.len() {
                break;
            }
            w = w.max(width(line[column]) + padding);
            this += 1;
        }
        widths.push(w);
        tw_format(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    tw_write_lines(lines, line0, line1, widths, out);
}

fn tw_write_lines(
    lines: &[Vec<&str>],
    line0: usize,
    line1: usize,
    widths: &[usize],
    out: &mut String,
) {
    for line in &lines[line0..line1] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                for _ in width(cell)..widths[j] {
                    out.push(' ');
                }
            }
        }
        out.push('\n');
    }
}

// ---------------------------------------------------------------------------------------------
// JSON output like Go's encoding/json

/// Re-indents compact or pretty JSON text the way Go's `json.MarshalIndent(v, "", "    ")` prints
/// it, keeping the daemon's key order.
pub fn indent_json(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                out.push_str(&src[start..i]);
                continue;
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < b.len() && b[j] == close {
                    out.push(c as char);
                    out.push(close as char);
                    i = j + 1;
                    continue;
                }
                out.push(c as char);
                depth += 1;
                newline(&mut out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c as char);
            }
            b',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            b':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            _ => {
                // Copy a run of a literal (number, true, false, null) as is.
                let start = i;
                while i < b.len() && !b"{}[],:\" \t\r\n".contains(&b[i]) {
                    i += 1;
                }
                out.push_str(&src[start..i]);
                continue;
            }
        }
        i += 1;
    }
    go_json_escape(&out)
}

/// Compact JSON as Go's encoder writes it (HTML characters escaped).
pub fn go_json(v: &Value) -> String {
    go_json_escape(&serde_json::to_string(v).unwrap_or_default())
}

fn go_json_escape(s: &str) -> String {
    // These characters appear only inside JSON strings, so a plain replace is safe.
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

// ---------------------------------------------------------------------------------------------
// A subset of Go's text/template

/// Error parsing or executing a template, with Go's prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Dot,
    Str(String),
    Num(f64),
    Bool(bool),
    Nil,
    Ident(String),
    Pipe,
    LParen,
    RParen,
    Declare,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Dot,
    Lit(Value),
    Nil,
    Ident(String),
    Sub(Pipeline, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

/// Whether functions compute values or produce table headers (docker's `HeaderFunctions`).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    Header,
}

impl Template {
    /// Parses Go template text.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let items = lex_template(src)?;
        let mut pos = 0;
        let (nodes, end) = parse_nodes(&items, &mut pos)?;
        if let Some(e) = end {
            return Err(TemplateError(format!("unexpected {{{{{e}}}}}")));
        }
        Ok(Template { nodes })
    }

    /// Runs the template on `data`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut ex = Exec {
            root: data,
            vars: vec![("$".into(), data.clone())],
            mode: Mode::Normal,
        };
        let mut out = String::new();
        ex.nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }

    /// Runs the template with docker's header functions, on an object mapping fields to titles.
    pub fn execute_header(&self, header: &Value) -> Result<String, TemplateError> {
        let mut ex = Exec {
            root: header,
            vars: vec![("$".into(), header.clone())],
            mode: Mode::Header,
        };
        let mut out = String::new();
        ex.nodes(&self.nodes, header, &mut out)?;
        Ok(out)
    }
}

enum Item {
    Text(String),
    Action(String),
}

fn lex_template(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while !rest.is_empty() {
        match rest.find("{{") {
            None => {
                let t = if trim_next { rest.trim_start() } else { rest };
                items.push(Item::Text(t.to_string()));
                break;
            }
            Some(i) => {
                let mut text = &rest[..i];
                if trim_next {
                    text = text.trim_start();
                }
                let after = &rest[i + 2..];
                let trim_left =
                    after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
                if trim_left {
                    text = text.trim_end();
                }
                if !text.is_empty() {
                    items.push(Item::Text(text.to_string()));
                }
                let body_start = if trim_left { 1 } else { 0 };
                let end = find_action_end(after)
                    .ok_or_else(|| TemplateError("unclosed action".into()))?;
                let mut body = &after[body_start..end];
                trim_next = false;
                if body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-") {
                    body = &body[..body.len() - 1];
                    trim_next = true;
                }
                let body = body.trim();
                if !body.starts_with("/*") {
                    items.push(Item::Action(body.to_string()));
                }
                rest = &after[end + 2..];
            }
        }
    }
    Ok(items)
}

/// The offset of the closing `}}`, skipping string literals.
fn find_action_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_nodes(
    items: &[Item],
    pos: &mut usize,
) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = Vec::new();
    while *pos < items.len() {
        let item = &items[*pos];
        *pos += 1;
        match item {
            Item::Text(t) => nodes.push(Node::Text(t.clone())),
            Item::Action(a) => {
                let (kw, rest) = match a.split_once(|c: char| c.is_whitespace()) {
                    Some((k, r)) => (k, r.trim()),
                    None => (a.as_str(), ""),
                };
                match kw {
                    "end" => return Ok((nodes, Some("end".into()))),
                    "else" => {
                        return Ok((nodes, Some(format!("else {rest}").trim_end().to_string())))
                    }
                    "if" | "range" | "with" => {
                        let pipe = parse_pipeline(rest)?;
                        let node = parse_block(kw, pipe, items, pos)?;
                        nodes.push(node);
                    }
                    _ => nodes.push(Node::Action(parse_pipeline(a)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_block(
    kw: &str,
    pipe: Pipeline,
    items: &[Item],
    pos: &mut usize,
) -> Result<Node, TemplateError> {
    let (body, end) = parse_nodes(items, pos)?;
    let mut else_nodes = Vec::new();
    match end.as_deref() {
        Some("end") => {}
        Some("else") => {
            let (e, end2) = parse_nodes(items, pos)?;
            if end2.as_deref() != Some("end") {
                return Err(TemplateError(format!("missing {{{{end}}}} for {kw}")));
            }
            else_nodes = e;
        }
        Some(other) if other.starts_with("else if ") => {
            // `{{else if x}}` is an `if` nested in the else branch sharing one `{{end}}`.
            let inner = parse_pipeline(&other["else if ".len()..])?;
            else_nodes = vec![parse_block("if", inner, items, pos)?];
        }
        _ => return Err(TemplateError(format!("unexpected EOF in {kw}"))),
    }
    Ok(match kw {
        "if" => Node::If(pipe, body, else_nodes),
        "range" => Node::Range(pipe, body, else_nodes),
        _ => Node::With(pipe, body, else_nodes),
    })
}

fn lex_action(s: &str) -> Result<Vec<Tok>, TemplateError> {
    let cs: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    let fields = |cs: &[char], i: &mut usize| {
        let mut fs = Vec::new();
        while *i < cs.len() && cs[*i] == '.' && *i + 1 < cs.len() && ident_char(cs[*i + 1]) {
            *i += 1;
            let st = *i;
            while *i < cs.len() && ident_char(cs[*i]) {
                *i += 1;
            }
            fs.push(cs[st..*i].iter().collect::<String>());
        }
        fs
    };
    while i < cs.len() {
        let c = cs[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
                let fs = fields(&cs, &mut i);
                if !fs.is_empty() {
                    toks.push(Tok::Field(fs));
                }
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1
            }
            ':' if cs.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2
            }
            '=' => {
                toks.push(Tok::Declare);
                i += 1
            }
            '.' => {
                let fs = fields(&cs, &mut i);
                if fs.is_empty() {
                    toks.push(Tok::Dot);
                    i += 1;
                } else {
                    toks.push(Tok::Field(fs));
                }
            }
            '$' => {
                let st = i;
                i += 1;
                while i < cs.len() && ident_char(cs[i]) {
                    i += 1;
                }
                let name: String = cs[st..i].iter().collect();
                let fs = fields(&cs, &mut i);
                toks.push(Tok::Var(name, fs));
            }
            '"' => {
                i += 1;
                let mut v = String::new();
                while i < cs.len() && cs[i] != '"' {
                    if cs[i] == '\\' && i + 1 < cs.len() {
                        i += 1;
                        v.push(match cs[i] {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            o => o,
                        });
                    } else {
                        v.push(cs[i]);
                    }
                    i += 1;
                }
                if i >= cs.len() {
                    return Err(TemplateError("unterminated quoted string".into()));
                }
                i += 1;
                toks.push(Tok::Str(v));
            }
            '`' => {
                i += 1;
                let st = i;
                while i < cs.len() && cs[i] != '`' {
                    i += 1;
                }
                toks.push(Tok::Str(cs[st..i].iter().collect()));
                i += 1;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let st = i;
                i += 1;
                while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '.') {
                    i += 1;
                }
                let t: String = cs[st..i].iter().collect();
                let n = t
                    .parse::<f64>()
                    .map_err(|_| TemplateError(format!("bad number syntax: {t:?}")))?;
                toks.push(Tok::Num(n));
            }
            c if ident_char(c) => {
                let st = i;
                while i < cs.len() && ident_char(cs[i]) {
                    i += 1;
                }
                let w: String = cs[st..i].iter().collect();
                toks.push(match w.as_str() {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    _ => Tok::Ident(w),
                });
            }
            other => return Err(TemplateError(format!("unexpected {other:?} in command"))),
        }
    }
    Ok(toks)
}

fn parse_pipeline(s: &str) -> Result<Pipeline, TemplateError> {
    let toks = lex_action(s)?;
    let mut pos = 0;
    let p = parse_pipe_toks(&toks, &mut pos)?;
    if pos < toks.len() {
        return Err(TemplateError(format!(
            "unexpected {:?} in operand",
            toks[pos]
        )));
    }
    Ok(p)
}

fn parse_pipe_toks(toks: &[Tok], pos: &mut usize) -> Result<Pipeline, TemplateError> {
    let mut decl = Vec::new();
    // Variable declarations: `$x :=` or `$k, $v :=`.
    let mut look = *pos;
    let mut names = Vec::new();
    while let Some(Tok::Var(n, f)) = toks.get(look) {
        if !f.is_empty() {
            break;
        }
        names.push(n.clone());
        look += 1;
        match toks.get(look) {
            Some(Tok::Comma) => look += 1,
            Some(Tok::Declare) => {
                decl = names.clone();
                *pos = look + 1;
                break;
            }
            _ => break,
        }
    }
    let mut cmds = Vec::new();
    let mut cmd = Vec::new();
    while *pos < toks.len() {
        let t = &toks[*pos];
        *pos += 1;
        match t {
            Tok::Pipe => {
                if cmd.is_empty() {
                    return Err(TemplateError("missing command".into()));
                }
                cmds.push(std::mem::take(&mut cmd));
            }
            Tok::RParen => {
                *pos -= 1;
                break;
            }
            Tok::LParen => {
                let inner = parse_pipe_toks(toks, pos)?;
                if toks.get(*pos) != Some(&Tok::RParen) {
                    return Err(TemplateError("unclosed left paren".into()));
                }
                *pos += 1;
                let fs = match toks.get(*pos) {
                    Some(Tok::Field(fs)) => {
                        *pos += 1;
                        fs.clone()
                    }
                    _ => Vec::new(),
                };
                cmd.push(Arg::Sub(inner, fs));
            }
            Tok::Field(f) => cmd.push(Arg::Field(f.clone())),
            Tok::Var(n, f) => cmd.push(Arg::Var(n.clone(), f.clone())),
            Tok::Dot => cmd.push(Arg::Dot),
            Tok::Str(s) => cmd.push(Arg::Lit(Value::String(s.clone()))),
            Tok::Num(n) => cmd.push(Arg::Lit(num_value(*n))),
            Tok::Bool(b) => cmd.push(Arg::Lit(Value::Bool(*b))),
            Tok::Nil => cmd.push(Arg::Nil),
            Tok::Ident(i) => cmd.push(Arg::Ident(i.clone())),
            Tok::Comma | Tok::Declare => {
                return Err(TemplateError("unexpected token in command".into()))
            }
        }
    }
    if !cmd.is_empty() {
        cmds.push(cmd);
    }
    if cmds.is_empty() {
        return Err(TemplateError("missing value for command".into()));
    }
    Ok(Pipeline { decl, cmds })
}

fn num_value(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

struct Exec<'a> {
    root: &'a Value,
    vars: Vec<(String, Value)>,
    mode: Mode,
}

/// Go's notion of a value's truth in `if`, `and`, `or`, `not`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().map(|f| f != 0.0).unwrap_or(false),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Prints a value the way Go's `fmt.Print` would print the decoded JSON.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 1e21 {
                    format!("{f:.0}")
                } else {
                    go_g(f, 17)
                }
            }
        }
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => {
            let sorted: BTreeMap<_, _> = o.iter().collect();
            let parts: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Marker for a missing map key, printed as Go prints it.
const NO_VALUE: &str = "\u{0}<no value>";

impl Exec<'_> {
    fn nodes(
        &mut self,
        nodes: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        out.push_str(&self.print(&v));
                    }
                }
                Node::If(p, a, b) => {
                    let v = self.pipeline(p, dot)?;
                    if truthy(&v) && !is_no_value(&v) {
                        self.scoped(a, dot, out)?;
                    } else {
                        self.scoped(b, dot, out)?;
                    }
                }
                Node::With(p, a, b) => {
                    let v = self.pipeline(p, dot)?;
                    if truthy(&v) && !is_no_value(&v) {
                        self.scoped(a, &v, out)?;
                    } else {
                        self.scoped(b, dot, out)?;
                    }
                }
                Node::Range(p, body, els) => {
                    let decl = p.decl.clone();
                    let plain = Pipeline {
                        decl: Vec::new(),
                        cmds: p.cmds.clone(),
                    };
                    let v = self.pipeline(&plain, dot)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::from(i), x.clone()))
                            .collect(),
                        Value::Object(o) => {
                            let sorted: BTreeMap<_, _> = o.iter().collect();
                            sorted
                                .into_iter()
                                .map(|(k, x)| (Value::String(k.clone()), x.clone()))
                                .collect()
                        }
                        Value::Null => Vec::new(),
                        Value::String(s) if s == NO_VALUE => Vec::new(),
                        Value::Number(n) => (0..n.as_i64().unwrap_or(0))
                            .map(|i| (Value::from(i), Value::from(i)))
                            .collect(),
                        other => {
                            return Err(TemplateError(format!(
                                "range can't iterate over {}",
                                go_print(other)
                            )))
                        }
                    };
                    if items.is_empty() {
                        self.scoped(els, dot, out)?;
                    }
                    for (k, x) in items {
                        let mark = self.vars.len();
                        match decl.len() {
                            1 => self.vars.push((decl[0].clone(), x.clone())),
                            2 => {
                                self.vars.push((decl[0].clone(), k));
                                self.vars.push((decl[1].clone(), x.clone()));
                            }
                            _ => {}
                        }
                        let r = self.nodes(body, &x, out);
                        self.vars.truncate(mark);
                        r?;
                    }
                }
            }
        }
        Ok(())
    }

    fn scoped(
        &mut self,
        nodes: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        let mark = self.vars.len();
        let r = self.nodes(nodes, dot, out);
        self.vars.truncate(mark);
        r
    }

    fn print(&self, v: &Value) -> String {
        if is_no_value(v) {
            return "<no value>".into();
        }
        go_print(v)
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Value::Null);
        if let Some(name) = p.decl.first() {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn command(
        &mut self,
        cmd: &[Arg],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let first = &cmd[0];
        if let Arg::Ident(name) = first {
            let mut args = Vec::new();
            for a in &cmd[1..] {
                args.push(self.arg(a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return self.call(name, args);
        }
        // A method-like field with arguments: docker's `.Label "key"`.
        if let (Arg::Field(fs), true) = (first, cmd.len() > 1) {
            if fs.last().map(String::as_str) == Some("Label") {
                let key = self.arg(&cmd[1], dot)?;
                if self.mode == Mode::Header {
                    return Ok(Value::String("LABEL".into()));
                }
                let mut base = fs.clone();
                base.pop();
                let obj = lookup(dot, &base);
                let labels = lookup(&obj, &["LabelsMap".into()]);
                return Ok(index_value(&labels, &key));
            }
        }
        if cmd.len() > 1 || piped.is_some() {
            return Err(TemplateError(format!(
                "can't give argument to non-function {:?}",
                first
            )));
        }
        self.arg(first, dot)
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        Ok(match a {
            Arg::Dot => dot.clone(),
            Arg::Field(fs) => lookup(dot, fs),
            Arg::Var(n, fs) => {
                let base = if n == "$" {
                    self.vars
                        .first()
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| self.root.clone())
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| TemplateError(format!("undefined variable: {n}")))?
                };
                lookup(&base, fs)
            }
            Arg::Lit(v) => v.clone(),
            Arg::Nil => Value::Null,
            Arg::Ident(name) => self.call(name, Vec::new())?,
            Arg::Sub(p, fs) => {
                let v = self.pipeline(p, dot)?;
                lookup(&v, fs)
            }
        })
    }

    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
        let s = |i: usize| {
            args.get(i)
                .map(|v| {
                    if is_no_value(v) {
                        String::new()
                    } else {
                        go_print(v)
                    }
                })
                .unwrap_or_default()
        };
        if self.mode == Mode::Header {
            // docker's header functions pass the header text through unchanged.
            return Ok(match name {
                "json" => Value::String(String::new()),
                _ => Value::String(s(0)),
            });
        }
        Ok(match name {
            "json" => Value::String(go_json(&strip_no_value(
                args.first().unwrap_or(&Value::Null),
            ))),
            "upper" => Value::String(s(0).to_uppercase()),
            "lower" => Value::String(s(0).to_lowercase()),
            "title" => Value::String(title(&s(0))),
            "split" => Value::Array(
                s(0).split(s(1).as_str())
                    .map(|x| Value::String(x.into()))
                    .collect(),
            ),
            "join" => {
                let sep = s(1);
                match args.first() {
                    Some(Value::Array(a)) => {
                        Value::String(a.iter().map(go_print).collect::<Vec<_>>().join(&sep))
                    }
                    _ => Value::String(s(0)),
                }
            }
            "truncate" => {
                let n = args.get(1).and_then(Value::as_u64).unwrap_or(0) as usize;
                Value::String(s(0).chars().take(n).collect())
            }
            "pad" => {
                let l = args.get(1).and_then(Value::as_u64).unwrap_or(0) as usize;
                let r = args.get(2).and_then(Value::as_u64).unwrap_or(0) as usize;
                Value::String(format!("{}{}{}", " ".repeat(l), s(0), " ".repeat(r)))
            }
            "len" => Value::from(match args.first() {
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(o)) => o.len(),
                Some(Value::String(x)) => x.len(),
                _ => 0,
            }),
            "index" => {
                let mut v = args.first().cloned().unwrap_or(Value::Null);
                for k in args.iter().skip(1) {
                    v = index_value(&v, k);
                }
                v
            }
            "print" => Value::String(
                args.iter()
                    .map(|v| self.print(v))
                    .collect::<Vec<_>>()
                    .join(""),
            ),
            "println" => Value::String(format!(
                "{}\n",
                args.iter()
                    .map(|v| self.print(v))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            "printf" => Value::String(printf(&s(0), &args[1.min(args.len())..])),
            "not" => Value::Bool(!truthy(args.first().unwrap_or(&Value::Null))),
            "and" => args
                .iter()
                .find(|v| !truthy(v))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Null),
            "or" => args
                .iter()
                .find(|v| truthy(v))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Null),
            "eq" => {
                let a0 = args.first().cloned().unwrap_or(Value::Null);
                Value::Bool(args.iter().skip(1).any(|b| values_eq(&a0, b)))
            }
            "ne" => Value::Bool(!values_eq(
                args.first().unwrap_or(&Value::Null),
                args.get(1).unwrap_or(&Value::Null),
            )),
            "lt" | "le" | "gt" | "ge" => {
                let a = args.first().and_then(Value::as_f64);
                let b = args.get(1).and_then(Value::as_f64);
                let r = match (a, b) {
                    (Some(a), Some(b)) => match name {
                        "lt" => a < b,
                        "le" => a <= b,
                        "gt" => a > b,
                        _ => a >= b,
                    },
                    _ => {
                        let (a, b) = (s(0), s(1));
                        match name {
                            "lt" => a < b,
                            "le" => a <= b,
                            "gt" => a > b,
                            _ => a >= b,
                        }
                    }
                };
                Value::Bool(r)
            }
            other => return Err(TemplateError(format!("function \"{other}\" not defined"))),
        })
    }
}

fn is_no_value(v: &Value) -> bool {
    matches!(v, Value::String(s) if s == NO_VALUE)
}

fn strip_no_value(v: &Value) -> Value {
    if is_no_value(v) {
        Value::Null
    } else {
        v.clone()
    }
}

fn values_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn title(s: &str) -> String {
    let mut out = String::new();
    let mut prev_space = true;
    for c in s.chars() {
        if prev_space {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_space = c.is_whitespace();
    }
    out
}

fn lookup(v: &Value, fields: &[String]) -> Value {
    let mut cur = v.clone();
    for f in fields {
        cur = match &cur {
            Value::Object(o) => match o.get(f) {
                Some(x) => x.clone(),
                None => Value::String(NO_VALUE.into()),
            },
            _ => Value::String(NO_VALUE.into()),
        };
    }
    cur
}

fn index_value(v: &Value, k: &Value) -> Value {
    match (v, k) {
        (Value::Object(o), Value::String(key)) => o
            .get(key)
            .cloned()
            .unwrap_or_else(|| Value::String(String::new())),
        (Value::Array(a), k) => k
            .as_u64()
            .and_then(|i| a.get(i as usize))
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::String(String::new()),
    }
}

/// A small `fmt.Sprintf`: %s %v %d %q %%.
fn printf(fmt: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Skip flags and width.
        let mut spec = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '-' || d == '.' || d == '+' {
                spec.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else { break };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = it.next().cloned().unwrap_or(Value::Null);
        let text = match verb {
            'q' => go_quote(&go_print(&arg)),
            _ => go_print(&arg),
        };
        let w: usize = spec
            .trim_start_matches('-')
            .split('.')
            .next()
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        if spec.starts_with('-') {
            let _ = write!(out, "{text:<w$}");
        } else {
            let _ = write!(out, "{text:>w$}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// docker's formatter contexts for ps and images

/// A `--format` value resolved like docker's `formatter.Format`.
pub struct Format {
    pub table: bool,
    pub template: Template,
}

impl Format {
    /// Parses `table ...` or a plain template; `\t` and `\n` escapes become characters.
    pub fn parse(s: &str) -> Result<Format, TemplateError> {
        let table = s.starts_with("table");
        let body = if table { &s["table".len()..] } else { s };
        let body = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        Ok(Format {
            table,
            template: Template::parse(&body)?,
        })
    }

    /// Renders rows (and the header from `header` when a table).
    pub fn render(&self, rows: &[Value], header: &Value) -> Result<String, TemplateError> {
        let mut buf = String::new();
        for r in rows {
            buf.push_str(&self.template.execute(r)?);
            buf.push('\n');
        }
        if !self.table {
            return Ok(buf);
        }
        let mut all = self.template.execute_header(header)?;
        all.push('\n');
        all.push_str(&buf);
        Ok(tabwrite(&all))
    }
}

/// Docker's prune report: `<title>:` and what was deleted (if anything), then the space.
pub fn prune_report(title: &str, deleted: &[&str], space: u64) -> String {
    let mut out = String::new();
    if !deleted.is_empty() {
        out.push_str(&format!("{title}:\n"));
        for d in deleted {
            out.push_str(d);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size_prec(space as f64, 4)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_like_go_units() {
        let cases = [
            (0.0, "0B"),
            (100.0, "100B"),
            (999.0, "999B"),
            (1000.0, "1kB"),
            (4_261_234.0, "4.26MB"),
            (1_200_000.0, "1.2MB"),
            (7_800_000.0, "7.8MB"),
            (72_800_000.0, "72.8MB"),
            (187_000_000.0, "187MB"),
            (1_230_000_000.0, "1.23GB"),
            (999_999.0, "1e+03kB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(truncate_id("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(truncate_id("abc"), "abc");
        assert_eq!(
            ellipsis("sh -c 'while true; do sleep 1; done'", 20),
            "sh -c 'while true; …"
        );
        assert_eq!(ellipsis("echo hi", 20), "echo hi");
        assert_eq!(go_quote("echo \"a\"\n"), "\"echo \\\"a\\\"\\n\"");
    }

    #[test]
    fn tabwriter_like_go() {
        let text = "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n";
        assert_eq!(
            tabwrite(text),
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
        let text = "A\tB\nlonger-cell-here\tx\n";
        assert_eq!(
            tabwrite(text),
            "A                  B\nlonger-cell-here   x\n"
        );
        // Lines with fewer cells end the column block.
        let text = "a\tb\tc\nonly\n";
        assert_eq!(tabwrite(text), "a         b         c\nonly\n");
    }

    fn sample() -> Value {
        json!({
            "Id": "abc123",
            "Name": "/web",
            "Args": ["-c", "echo hi"],
            "State": {"Status": "running", "Running": true, "ExitCode": 0, "Pid": 42},
            "Config": {"Labels": {"a": "1", "b": "two"}, "Env": ["A=1", "B=2"], "Tty": false, "Image": "alpine<x>"},
            "HostConfig": {"Memory": 536870912, "NanoCpus": 1500000000u64},
        })
    }

    #[test]
    fn templates_on_inspect_json() {
        let v = sample();
        let cases = [
            ("{{.Id}}", "abc123"),
            ("{{.State.Status}}", "running"),
            ("{{.State.Pid}} {{.HostConfig.Memory}}", "42 536870912"),
            ("{{index .Config.Labels \"b\"}}", "two"),
            ("{{index .Config.Labels \"zz\"}}", ""),
            ("{{.Config.Labels}}", "map[a:1 b:two]"),
            ("{{json .Config.Labels}}", "{\"a\":\"1\",\"b\":\"two\"}"),
            ("{{json .Config.Image}}", "\"alpine\\u003cx\\u003e\""),
            ("{{range .Config.Env}}[{{.}}]{{end}}", "[A=1][B=2]"),
            (
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                "a=1;b=two;",
            ),
            ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
            (
                "{{if .Config.Tty}}tty{{else if .State.Running}}run{{else}}no{{end}}",
                "run",
            ),
            ("{{join .Args \" \"}}", "-c echo hi"),
            ("{{upper .State.Status}}", "RUNNING"),
            ("{{.State.Status | upper}}", "RUNNING"),
            ("{{lower \"ABC\"}}", "abc"),
            ("{{.Missing}}", "<no value>"),
            ("{{.Args}}", "[-c echo hi]"),
            ("{{printf \"%s-%d\" .Name .State.Pid}}", "/web-42"),
            ("{{.Name | printf \"%s!\"}}", "/web!"),
            ("{{len .Args}}", "2"),
            ("{{if eq .State.Status \"running\"}}yes{{end}}", "yes"),
            ("{{with .State}}{{.Status}}{{end}}", "running"),
            ("  {{- .Id -}}  ", "abc123"),
            ("{{(index .Args 1)}}", "echo hi"),
            ("{{$.Id}}", "abc123"),
        ];
        for (tpl, want) in cases {
            let t = Template::parse(tpl).unwrap_or_else(|e| panic!("{tpl}: {e}"));
            assert_eq!(t.execute(&v).unwrap(), want, "{tpl}");
        }
        assert!(Template::parse("{{.Id").is_err());
        assert!(Template::parse("{{if .Id}}x").is_err());
        assert!(Template::parse("{{nosuch .Id}}")
            .unwrap()
            .execute(&v)
            .is_err());
    }

    #[test]
    fn json_dot_and_indent() {
        let v = json!({"b": [1, 2], "a": {}});
        assert_eq!(
            Template::parse("{{json .}}").unwrap().execute(&v).unwrap(),
            "{\"a\":{},\"b\":[1,2]}"
        );
        let raw = r#"[{"Id":"x","Args":[],"Cfg":{"A":"<b>","N":[1,2]},"E":{}}]"#;
        let want = "[\n    {\n        \"Id\": \"x\",\n        \"Args\": [],\n        \"Cfg\": {\n            \"A\": \"\\u003cb\\u003e\",\n            \"N\": [\n                1,\n                2\n            ]\n        },\n        \"E\": {}\n    }\n]";
        assert_eq!(indent_json(raw), want);
        assert_eq!(indent_json("[]"), "[]");
    }

    #[test]
    fn table_format_with_header() {
        let f = Format::parse("table {{.ID}}\\t{{.Names}}").unwrap();
        let rows = vec![
            json!({"ID": "0123456789ab", "Names": "web"}),
            json!({"ID": "ff", "Names": "db"}),
        ];
        let header = json!({"ID": "CONTAINER ID", "Names": "NAMES"});
        assert_eq!(
            f.render(&rows, &header).unwrap(),
            "CONTAINER ID   NAMES\n0123456789ab   web\nff             db\n"
        );
        let f = Format::parse("{{.ID}}: {{.Names}}").unwrap();
        assert_eq!(
            f.render(&rows, &header).unwrap(),
            "0123456789ab: web\nff: db\n"
        );
    }
}
