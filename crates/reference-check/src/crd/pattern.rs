//! The regular expressions of the CRDs' `pattern` keywords.
//!
//! The CRDs use a handful of small patterns (condition `reason` and `type`).
//! Rather than pull in a regex engine, this is a Thompson-NFA matcher for
//! the common subset: literals, `.`, bracket classes with ranges, `\d \w \s`
//! and escaped punctuation, groups (also `(?:`), alternation, `* + ? {n,m}`
//! and the anchors `^ $`. Matching runs in time linear in the input. Anything
//! outside the subset is refused when the CRD is loaded, so a new pattern
//! cannot be silently mis-checked.
//!
//! As in OpenAPI, a pattern matches anywhere in the value unless anchored.

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    source: String,
    program: Vec<Inst>,
}

#[derive(Debug, Clone)]
enum Inst {
    Char(char),
    Any,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Split(usize, usize),
    Jump(usize),
    AssertStart,
    AssertEnd,
    Match,
}

#[derive(Debug, Clone)]
enum Ast {
    Empty,
    Literal(char),
    Any,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Start,
    End,
    Concat(Vec<Ast>),
    Alternate(Vec<Ast>),
    Repeat {
        inner: Box<Ast>,
        min: u32,
        max: Option<u32>,
    },
}

/// Counted repetition is expanded; this bounds the program size.
const MAX_REPEAT: u32 = 1000;

impl Pattern {
    pub(crate) fn new(source: &str) -> Result<Pattern, String> {
        let chars: Vec<char> = source.chars().collect();
        let mut parser = Parser {
            chars: &chars,
            pos: 0,
        };
        let ast = parser.alternation()?;
        if parser.pos < chars.len() {
            return Err(format!("pattern {source:?}: unmatched ')'"));
        }
        let mut program = Vec::new();
        compile(&ast, &mut program);
        program.push(Inst::Match);
        Ok(Pattern {
            source: source.to_owned(),
            program,
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.program.len();
        let mut current: Vec<usize> = Vec::with_capacity(n);
        let mut next: Vec<usize> = Vec::with_capacity(n);
        let mut seen = vec![usize::MAX; n];
        for pos in 0..=chars.len() {
            // A new attempt starts at every position: unanchored search.
            if self.add(&mut current, &mut seen, pos, 0, pos, chars.len()) {
                return true;
            }
            let Some(&c) = chars.get(pos) else { break };
            for &pc in &current {
                let step = match &self.program[pc] {
                    Inst::Char(x) => *x == c,
                    Inst::Any => c != '\n',
                    Inst::Class { ranges, negated } => {
                        ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
                    }
                    _ => false,
                };
                if step && self.add(&mut next, &mut seen, pos + 1, pc + 1, pos + 1, chars.len()) {
                    return true;
                }
            }
            std::mem::swap(&mut current, &mut next);
            next.clear();
        }
        false
    }

    /// Follow empty transitions from `pc`, adding the character-consuming
    /// states to `list`. `mark` stamps states already visited in this step.
    /// Returns true when the match state is reached.
    fn add(
        &self,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        mark: usize,
        pc: usize,
        pos: usize,
        len: usize,
    ) -> bool {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if seen[pc] == mark {
                continue;
            }
            seen[pc] = mark;
            match &self.program[pc] {
                Inst::Jump(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::AssertStart => {
                    if pos == 0 {
                        stack.push(pc + 1);
                    }
                }
                Inst::AssertEnd => {
                    if pos == len {
                        stack.push(pc + 1);
                    }
                }
                Inst::Match => return true,
                _ => list.push(pc),
            }
        }
        false
    }
}

fn compile(ast: &Ast, out: &mut Vec<Inst>) {
    match ast {
        Ast::Empty => {}
        Ast::Literal(c) => out.push(Inst::Char(*c)),
        Ast::Any => out.push(Inst::Any),
        Ast::Class { ranges, negated } => out.push(Inst::Class {
            ranges: ranges.clone(),
            negated: *negated,
        }),
        Ast::Start => out.push(Inst::AssertStart),
        Ast::End => out.push(Inst::AssertEnd),
        Ast::Concat(items) => items.iter().for_each(|a| compile(a, out)),
        Ast::Alternate(branches) => {
            // Split(branch, rest) chains; every branch jumps to the end.
            let mut jumps = Vec::new();
            for (i, branch) in branches.iter().enumerate() {
                if i + 1 < branches.len() {
                    let split = out.len();
                    out.push(Inst::Split(split + 1, 0));
                    compile(branch, out);
                    jumps.push(out.len());
                    out.push(Inst::Jump(0));
                    let next = out.len();
                    out[split] = Inst::Split(split + 1, next);
                } else {
                    compile(branch, out);
                }
            }
            let end = out.len();
            for j in jumps {
                out[j] = Inst::Jump(end);
            }
        }
        Ast::Repeat { inner, min, max } => {
            for _ in 0..*min {
                compile(inner, out);
            }
            match max {
                None => {
                    let split = out.len();
                    out.push(Inst::Split(split + 1, 0));
                    compile(inner, out);
                    out.push(Inst::Jump(split));
                    let end = out.len();
                    out[split] = Inst::Split(split + 1, end);
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(out.len());
                        out.push(Inst::Split(0, 0));
                        compile(inner, out);
                    }
                    let end = out.len();
                    for s in splits {
                        out[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn error(&self, what: &str) -> String {
        let source: String = self.chars.iter().collect();
        format!("pattern {source:?}: {what} at offset {}", self.pos)
    }

    fn alternation(&mut self) -> Result<Ast, String> {
        let mut branches = vec![self.concatenation()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concatenation()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().unwrap_or(Ast::Empty)
        } else {
            Ast::Alternate(branches)
        })
    }

    fn concatenation(&mut self) -> Result<Ast, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Ast::Concat(items))
    }

    fn quantified(&mut self, atom: Ast) -> Result<Ast, String> {
        let mut ast = atom;
        let mut repeated = false;
        loop {
            let (min, max) = match self.peek() {
                Some('{') => match self.counted()? {
                    Some(bounds) => bounds,
                    None => return Ok(ast),
                },
                Some(c @ ('*' | '+' | '?')) => {
                    self.pos += 1;
                    match c {
                        '*' => (0, None),
                        '+' => (1, None),
                        _ => (0, Some(1)),
                    }
                }
                _ => return Ok(ast),
            };
            if matches!(ast, Ast::Start | Ast::End | Ast::Empty) {
                return Err(self.error("nothing to repeat"));
            }
            if repeated {
                return Err(self.error("nested repetition operator"));
            }
            repeated = true;
            // A lazy marker changes which match is found, not whether one is.
            if self.peek() == Some('?') {
                self.pos += 1;
            }
            ast = Ast::Repeat {
                inner: Box::new(ast),
                min,
                max,
            };
        }
    }

    /// `{n}`, `{n,}` or `{n,m}` at the cursor; consumes it. `None` (and
    /// nothing consumed) when the brace does not start a valid count, where
    /// it is a literal brace as in most engines.
    fn counted(&mut self) -> Result<Option<(u32, Option<u32>)>, String> {
        let rest: String = self.chars[self.pos..].iter().collect();
        let Some(close) = rest.find('}') else {
            return Ok(None);
        };
        let body = &rest[1..close];
        let number = |s: &str| s.parse::<u32>().ok();
        let bounds = match body.split_once(',') {
            None => number(body).map(|n| (n, Some(n))),
            Some((lo, "")) => number(lo).map(|n| (n, None)),
            Some((lo, hi)) => number(lo).zip(number(hi)).map(|(l, h)| (l, Some(h))),
        };
        let Some((min, max)) = bounds else {
            return Ok(None);
        };
        if max.is_some_and(|m| m < min) || min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT) {
            return Err(self.error("bad repetition count"));
        }
        self.pos += rest[..=close].chars().count();
        Ok(Some((min, max)))
    }

    fn atom(&mut self) -> Result<Ast, String> {
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end"));
        };
        self.pos += 1;
        match c {
            '(' => {
                if self.chars.get(self.pos..self.pos + 2) == Some(&['?', ':']) {
                    self.pos += 2;
                } else if self.peek() == Some('?') {
                    return Err(self.error("unsupported group syntax"));
                }
                let inner = self.alternation()?;
                if self.peek() != Some(')') {
                    return Err(self.error("missing ')'"));
                }
                self.pos += 1;
                Ok(inner)
            }
            '[' => self.class(),
            '.' => Ok(Ast::Any),
            '^' => Ok(Ast::Start),
            '$' => Ok(Ast::End),
            '*' | '+' | '?' => Err(self.error("nothing to repeat")),
            '\\' => {
                let (ranges, negated) = self.escape()?;
                Ok(match ranges.as_slice() {
                    [(lo, hi)] if lo == hi && !negated => Ast::Literal(*lo),
                    _ => Ast::Class { ranges, negated },
                })
            }
            c => Ok(Ast::Literal(c)),
        }
    }

    /// After a backslash: the character set it stands for.
    fn escape(&mut self) -> Result<(Vec<(char, char)>, bool), String> {
        let Some(c) = self.peek() else {
            return Err(self.error("trailing backslash"));
        };
        self.pos += 1;
        let digit = vec![('0', '9')];
        let word = vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];
        let space = vec![('\t', '\r'), (' ', ' ')];
        Ok(match c {
            'd' => (digit, false),
            'D' => (digit, true),
            'w' => (word, false),
            'W' => (word, true),
            's' => (space, false),
            'S' => (space, true),
            'n' => (vec![('\n', '\n')], false),
            't' => (vec![('\t', '\t')], false),
            'r' => (vec![('\r', '\r')], false),
            c if c.is_ascii_alphanumeric() => {
                return Err(self.error(&format!("unsupported escape \\{c}")))
            }
            c => (vec![(c, c)], false),
        })
    }

    fn class(&mut self) -> Result<Ast, String> {
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("missing ']'"));
            };
            self.pos += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let (set, neg) = self.escape()?;
                match set.as_slice() {
                    [(a, b)] if a == b && !neg => *a,
                    _ if !neg => {
                        ranges.extend(set);
                        continue;
                    }
                    _ => return Err(self.error("negated escape inside a class")),
                }
            } else {
                c
            };
            // `a-z`, but a '-' before ']' is literal.
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                self.pos += 1;
                let Some(mut hi) = self.peek() else {
                    return Err(self.error("missing ']'"));
                };
                self.pos += 1;
                if hi == '\\' {
                    let (set, _) = self.escape()?;
                    match set.as_slice() {
                        [(a, b)] if a == b => hi = *a,
                        _ => return Err(self.error("class range ends in a set")),
                    }
                }
                if hi < lo {
                    return Err(self.error("reversed class range"));
                }
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Ok(Ast::Class { ranges, negated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REASON: &str = "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";
    const TYPE: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

    #[test]
    fn condition_reason_pattern() {
        let p = Pattern::new(REASON).unwrap();
        for ok in ["Ready", "Pending", "A", "Error_1", "x:y,z_"] {
            assert!(p.is_match(ok), "{ok}");
        }
        for bad in [
            "",
            "1Ready",
            "Ready ",
            "not ready",
            "Ready:",
            "Ready,",
            "-x",
        ] {
            assert!(!p.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn condition_type_pattern() {
        let p = Pattern::new(TYPE).unwrap();
        for ok in [
            "Ready",
            "Configured",
            "example.com/Ready",
            "a-b.c/X_y.z",
            "x",
        ] {
            assert!(p.is_match(ok), "{ok}");
        }
        for bad in ["", "-Ready", "Ready-", "Example.com/Ready", "a/b/c", "a b"] {
            assert!(!p.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn long_inputs_stay_fast() {
        // Nested stars: a backtracking engine would take exponential time.
        let p = Pattern::new(TYPE).unwrap();
        let long = format!("{}!", "a-".repeat(5000));
        assert!(!p.is_match(&long));
    }

    #[test]
    fn unanchored_counted_and_alternation() {
        let p = Pattern::new("ab{2,3}(c|d)").unwrap();
        assert!(p.is_match("xxabbd"));
        assert!(p.is_match("abbbc"));
        assert!(!p.is_match("abc"));
        assert!(!p.is_match("abbbbe"));
        assert!(Pattern::new("^a{2}$").unwrap().is_match("aa"));
        assert!(!Pattern::new("^a{2}$").unwrap().is_match("aaa"));
        assert!(Pattern::new(r"^\d+(\.\d+)?$").unwrap().is_match("3.14"));
        assert!(Pattern::new("[^a-c]").unwrap().is_match("abcd"));
        assert!(!Pattern::new("^[^a-c]+$").unwrap().is_match("abcd"));
    }

    #[test]
    fn unsupported_syntax_is_refused() {
        for bad in [r"\bword", "(?=x)", "a**", "[z-a]", "(ab", "ab)", r"\p{L}"] {
            assert!(Pattern::new(bad).is_err(), "{bad}");
        }
    }
}
