//! The SOQL subset the sandbox answers, parsed into a [`Query`]; anything
//! outside it is a [`SoqlError`] (the face answers 400 `MALFORMED_QUERY`),
//! never silently ignored, so a client never gets records it didn't ask for.
//!
//! ```text
//! SELECT field {, field} FROM Object
//!   [WHERE cond {AND cond}]
//!   [ORDER BY Id [ASC]]
//!   [LIMIT n]
//! cond := field = 'text' | field != 'text' | field = true|false | field = null
//!       | field != true|false|null | field LIKE 'pattern'
//! ```
//!
//! Keywords are case-insensitive, as are field and object names (the face
//! resolves them). A field may be a relationship path (`Profile.Name`).
//! String literals take SOQL's escapes: `\'`, `\"`, `\\`, `\n`, `\r`, `\t`,
//! `\b`, `\f`, `\uXXXX`, and in `LIKE` patterns `\%` and `\_` for literal
//! `%` and `_`. `<>` is accepted for `!=` as SOQL does. Not supported: `OR`,
//! `NOT`, parentheses, `IN`, comparisons, `ORDER BY` anything but `Id`
//! ascending, `OFFSET`, aggregates, sub-queries, date literals.

use std::fmt;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// The selected fields, as written.
    pub fields: Vec<String>,
    /// The object, as written.
    pub object: String,
    /// All must hold.
    pub conditions: Vec<Cond>,
    pub limit: Option<usize>,
}

/// `field op value`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cond {
    pub field: String,
    pub op: Op,
    pub value: Literal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Like,
}

/// A literal: a string keeps, per character, whether it was escaped (only
/// `LIKE` cares: an escaped `%` or `_` is no wildcard).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(Vec<(char, bool)>),
    Bool(bool),
    Null,
}

impl Literal {
    /// The string's text, escapes resolved.
    pub fn text(&self) -> Option<String> {
        match self {
            Literal::Str(chars) => Some(chars.iter().map(|(c, _)| *c).collect()),
            _ => None,
        }
    }
}

/// Why a query is outside the subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SoqlError(pub String);

impl fmt::Display for SoqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, SoqlError> {
    Err(SoqlError(msg.into()))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(Vec<(char, bool)>),
    Num(String),
    Comma,
    Eq,
    Ne,
    Other(char),
}

fn tokens(q: &str) -> Result<Vec<Tok>, SoqlError> {
    let mut out = Vec::new();
    let mut it = q.chars().peekable();
    while let Some(&c) = it.peek() {
        match c {
            c if c.is_whitespace() => {
                it.next();
            }
            ',' => {
                it.next();
                out.push(Tok::Comma);
            }
            '=' => {
                it.next();
                out.push(Tok::Eq);
            }
            '!' | '<' => {
                it.next();
                match (c, it.next()) {
                    ('!', Some('=')) | ('<', Some('>')) => out.push(Tok::Ne),
                    _ => return err(format!("unexpected token: '{c}'")),
                }
            }
            '\'' => {
                it.next();
                let mut s = Vec::new();
                loop {
                    match it.next() {
                        None => return err("unterminated string literal"),
                        Some('\'') => break,
                        Some('\\') => {
                            let e = it
                                .next()
                                .ok_or_else(|| SoqlError("unterminated string literal".into()))?;
                            let ch = match e {
                                'n' | 'N' => '\n',
                                'r' | 'R' => '\r',
                                't' | 'T' => '\t',
                                'b' | 'B' => '\u{8}',
                                'f' | 'F' => '\u{c}',
                                '\'' | '"' | '\\' | '%' | '_' => e,
                                'u' | 'U' => {
                                    let hex: String = (0..4).filter_map(|_| it.next()).collect();
                                    u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .filter(|_| hex.len() == 4)
                                        .and_then(char::from_u32)
                                        .ok_or_else(|| {
                                            SoqlError(format!("invalid unicode escape: \\u{hex}"))
                                        })?
                                }
                                other => {
                                    return err(format!(
                                        "Invalid string literal: invalid escape sequence \\{other}"
                                    ));
                                }
                            };
                            s.push((ch, true));
                        }
                        Some(ch) => s.push((ch, false)),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_ascii_digit() => {
                let mut n = String::new();
                while let Some(&d) = it.peek().filter(|d| d.is_ascii_alphanumeric()) {
                    n.push(d);
                    it.next();
                }
                out.push(Tok::Num(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut w = String::new();
                while let Some(&d) = it
                    .peek()
                    .filter(|d| d.is_alphanumeric() || **d == '_' || **d == '.')
                {
                    w.push(d);
                    it.next();
                }
                out.push(Tok::Word(w));
            }
            other => {
                it.next();
                out.push(Tok::Other(other));
            }
        }
    }
    Ok(out)
}

const KEYWORDS: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "order", "by", "asc", "desc", "limit", "offset",
    "like", "in", "null", "true", "false", "group", "having", "nulls",
];

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "end of query".into(),
        Some(Tok::Word(w)) => format!("'{w}'"),
        Some(Tok::Num(n)) => format!("'{n}'"),
        Some(Tok::Str(_)) => "a string literal".into(),
        Some(Tok::Comma) => "','".into(),
        Some(Tok::Eq) => "'='".into(),
        Some(Tok::Ne) => "'!='".into(),
        Some(Tok::Other(c)) => format!("'{c}'"),
    }
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn keyword(&mut self, kw: &str) -> Result<(), SoqlError> {
        if is_kw(self.peek(), kw) {
            self.at += 1;
            Ok(())
        } else {
            err(format!(
                "expecting {}, found {}",
                kw.to_ascii_uppercase(),
                describe(self.peek())
            ))
        }
    }
    /// A field or object name (not a keyword).
    fn name(&mut self, what: &str) -> Result<String, SoqlError> {
        match self.peek() {
            Some(Tok::Word(w))
                if !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k))
                    && !w.starts_with('.')
                    && !w.ends_with('.')
                    && !w.contains("..") =>
            {
                let w = w.clone();
                self.at += 1;
                Ok(w)
            }
            other => err(format!("expecting {what}, found {}", describe(other))),
        }
    }
}

/// Parses one query of the subset.
pub(crate) fn parse(q: &str) -> Result<Query, SoqlError> {
    let mut p = Parser {
        toks: tokens(q)?,
        at: 0,
    };
    p.keyword("select")?;
    let mut fields = Vec::new();
    loop {
        if matches!(p.toks.get(p.at + 1), Some(Tok::Other('('))) {
            return err("aggregate functions and sub-queries are not supported by the sandbox");
        }
        let f = p.name("a field name")?;
        if fields.iter().any(|g: &String| g.eq_ignore_ascii_case(&f)) {
            return err(format!("duplicate field selected: {f}"));
        }
        fields.push(f);
        if p.peek() == Some(&Tok::Comma) {
            p.at += 1;
        } else {
            break;
        }
    }
    p.keyword("from")?;
    let object = p.name("an object name")?;
    let mut conditions = Vec::new();
    if is_kw(p.peek(), "where") {
        p.at += 1;
        loop {
            conditions.push(cond(&mut p)?);
            if is_kw(p.peek(), "and") {
                p.at += 1;
            } else if is_kw(p.peek(), "or") {
                return err("OR is not supported by the sandbox; only AND");
            } else {
                break;
            }
        }
    }
    if is_kw(p.peek(), "order") {
        p.at += 1;
        p.keyword("by")?;
        let f = p.name("a field name")?;
        if !f.eq_ignore_ascii_case("id") {
            return err(format!("the sandbox only orders by Id, not {f}"));
        }
        if is_kw(p.peek(), "asc") {
            p.at += 1;
        } else if is_kw(p.peek(), "desc") {
            return err("the sandbox only orders by Id ascending");
        }
    }
    let mut limit = None;
    if is_kw(p.peek(), "limit") {
        p.at += 1;
        match p.next() {
            Some(Tok::Num(n)) => {
                limit = Some(
                    n.parse::<usize>()
                        .map_err(|_| SoqlError(format!("invalid LIMIT: {n}")))?,
                )
            }
            other => {
                return err(format!(
                    "expecting a number after LIMIT, found {}",
                    describe(other.as_ref())
                ));
            }
        }
    }
    if p.peek().is_some() {
        return err(format!("unexpected token: {}", describe(p.peek())));
    }
    Ok(Query {
        fields,
        object,
        conditions,
        limit,
    })
}

fn cond(p: &mut Parser) -> Result<Cond, SoqlError> {
    if matches!(p.peek(), Some(Tok::Other('('))) || is_kw(p.peek(), "not") {
        return err("parentheses and NOT are not supported by the sandbox");
    }
    let field = p.name("a field name")?;
    let op = match p.next() {
        Some(Tok::Eq) => Op::Eq,
        Some(Tok::Ne) => Op::Ne,
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("like") => Op::Like,
        other => {
            return err(format!(
                "unexpected token: {} (the sandbox knows =, != and LIKE)",
                describe(other.as_ref())
            ));
        }
    };
    let value = match p.next() {
        Some(Tok::Str(s)) => Literal::Str(s),
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
        other => {
            return err(format!(
                "expecting a string, true, false or null after {field}, found {}",
                describe(other.as_ref())
            ));
        }
    };
    if op == Op::Like && !matches!(value, Literal::Str(_)) {
        return err("LIKE needs a string pattern");
    }
    Ok(Cond { field, op, value })
}

/// Whether `text` matches a `LIKE` pattern: `%` any run, `_` one character,
/// case-insensitively; escaped `%`/`_` match themselves.
pub(crate) fn like(text: &str, pattern: &[(char, bool)]) -> bool {
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let p: Vec<(char, bool)> = pattern
        .iter()
        .flat_map(|(c, e)| c.to_lowercase().map(move |l| (l, *e)))
        .collect();
    // Classic two-pointer wildcard match with backtracking to the last `%`.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(('%', false)) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(('_', false)) => {
                ti += 1;
                pi += 1;
            }
            Some((c, _)) if *c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == ('%', false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Literal {
        Literal::Str(text.chars().map(|c| (c, false)).collect())
    }

    #[test]
    fn the_subset_parses() {
        let q = parse(
            "select Id, Name, Profile.Name from User where Email = 'Jane@Example.com' \
             and IsActive = TRUE And ManagerId != null ORDER BY Id ASC LIMIT 5",
        )
        .unwrap();
        assert_eq!(q.fields, ["Id", "Name", "Profile.Name"]);
        assert_eq!(q.object, "User");
        assert_eq!(
            q.conditions,
            [
                Cond {
                    field: "Email".into(),
                    op: Op::Eq,
                    value: s("Jane@Example.com")
                },
                Cond {
                    field: "IsActive".into(),
                    op: Op::Eq,
                    value: Literal::Bool(true)
                },
                Cond {
                    field: "ManagerId".into(),
                    op: Op::Ne,
                    value: Literal::Null
                },
            ]
        );
        assert_eq!(q.limit, Some(5));
        let q = parse("SELECT Id FROM Task WHERE Subject LIKE '%offboard:%' AND OwnerId <> '005'")
            .unwrap();
        assert_eq!(q.conditions[0].op, Op::Like);
        assert_eq!(q.conditions[1].op, Op::Ne);
        assert_eq!(parse("SELECT Id FROM Lead").unwrap().conditions, []);
    }

    #[test]
    fn escapes_resolve() {
        let q = parse(r"SELECT Id FROM Lead WHERE Name = 'O\'Brien \\ \n \u00e9'").unwrap();
        assert_eq!(
            q.conditions[0].value.text().unwrap(),
            "O'Brien \\ \n \u{e9}"
        );
        let q = parse(r"SELECT Id FROM Task WHERE Subject LIKE '100\%'").unwrap();
        let Literal::Str(p) = &q.conditions[0].value else {
            panic!()
        };
        assert!(like("100%", p));
        assert!(!like("1000", p), "an escaped % is no wildcard");
        assert!(parse(r"SELECT Id FROM Lead WHERE Name = 'a\q'").is_err());
        assert!(parse("SELECT Id FROM Lead WHERE Name = 'open").is_err());
    }

    #[test]
    fn everything_else_is_refused() {
        for q in [
            "",
            "SELECT FROM Lead",
            "SELECT Id Lead",
            "SELECT Id, FROM Lead",
            "SELECT Id, Id FROM Lead",
            "SELECT COUNT() FROM Lead",
            "SELECT Id FROM Lead WHERE Name = 'a' OR Name = 'b'",
            "SELECT Id FROM Lead WHERE (Name = 'a')",
            "SELECT Id FROM Lead WHERE NOT Name = 'a'",
            "SELECT Id FROM Lead WHERE Name IN ('a')",
            "SELECT Id FROM Lead WHERE Name > 'a'",
            "SELECT Id FROM Lead WHERE Name = 5",
            "SELECT Id FROM Lead WHERE IsConverted LIKE true",
            "SELECT Id FROM Lead ORDER BY Name",
            "SELECT Id FROM Lead ORDER BY Id DESC",
            "SELECT Id FROM Lead LIMIT x",
            "SELECT Id FROM Lead LIMIT 5 OFFSET 5",
            "SELECT Id FROM Lead WHERE",
            "SELECT Id FROM Lead;",
        ] {
            assert!(parse(q).is_err(), "{q:?} parsed");
        }
    }

    #[test]
    fn like_matches_like_soql() {
        let p = |t: &str| t.chars().map(|c| (c, false)).collect::<Vec<_>>();
        assert!(like("Offboard: deactivate Jane", &p("%DEACTIVATE%")));
        assert!(like("abc", &p("a_c")));
        assert!(!like("abbc", &p("a_c")));
        assert!(like("abc", &p("abc")));
        assert!(!like("abcd", &p("abc")));
        assert!(like("", &p("%")));
        assert!(like("xaxbxc", &p("%a%b%c")));
        assert!(!like("xaxbx", &p("%a%b%c")));
    }
}
