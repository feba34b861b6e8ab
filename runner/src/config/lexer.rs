//! The tokens of protobuf text format, as Python's `text_format` tokenizer
//! reads them.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Ident,
    Number,
    Str,
    Punct,
    Eof,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) text: String,
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Token {
    pub(super) fn is(&self, punct: char) -> bool {
        self.kind == Kind::Punct && self.text.len() == 1 && self.text.starts_with(punct)
    }

    pub(super) fn describe(&self) -> String {
        match self.kind {
            Kind::Eof => "end of file".to_owned(),
            Kind::Str => self.text.clone(),
            _ => format!("\"{}\"", self.text),
        }
    }
}

pub(super) struct Lexer<'a> {
    pub(super) src: &'a str,
    pub(super) pos: usize,
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Lexer<'_> {
    pub(super) fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    pub(super) fn peek2(&self) -> Option<char> {
        self.src[self.pos..].chars().nth(1)
    }

    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    pub(super) fn bump_while(&mut self, f: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&f) {
            self.bump();
        }
    }
}

pub(super) fn lex(src: &str) -> Result<Vec<Token>> {
    let mut lx = Lexer {
        src,
        pos: 0,
        line: 1,
        column: 1,
    };
    let mut tokens = Vec::new();
    loop {
        lx.bump_while(char::is_whitespace);
        let (line, column, start) = (lx.line, lx.column, lx.pos);
        let Some(c) = lx.peek() else {
            tokens.push(Token {
                kind: Kind::Eof,
                text: String::new(),
                line,
                column,
            });
            return Ok(tokens);
        };
        let kind = if c == '#' {
            lx.bump_while(|c| c != '\n');
            continue;
        } else if c.is_ascii_alphabetic() || c == '_' {
            lx.bump_while(|c| c.is_ascii_alphanumeric() || "_+-".contains(c));
            Kind::Ident
        } else if c.is_ascii_digit()
            || c == '+'
            || c == '-'
            || (c == '.' && lx.peek2().is_some_and(|d| d.is_ascii_digit()))
        {
            lx.bump_while(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
            Kind::Number
        } else if c == '"' || c == '\'' {
            lx.bump();
            loop {
                match lx.bump() {
                    Some(q) if q == c => break,
                    Some('\\') if !matches!(lx.peek(), None | Some('\n')) => {
                        lx.bump();
                    }
                    None | Some('\n') | Some('\\') => {
                        return Err(ConfigError::at(
                            line,
                            column,
                            None,
                            "unterminated string".to_owned(),
                        ))
                    }
                    Some(_) => {}
                }
            }
            Kind::Str
        } else {
            lx.bump();
            Kind::Punct
        };
        tokens.push(Token {
            kind,
            text: src[start..lx.pos].to_owned(),
            line,
            column,
        });
    }
}

/// Decode the C-style escapes of a quoted string token into bytes.
pub(super) fn unescape(tok: &Token) -> Result<Vec<u8>> {
    let err = |msg: String| ConfigError::at(tok.line, tok.column, None, msg);
    let inner = &tok.text[1..tok.text.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        // The lexer guarantees a character follows every backslash.
        let e = chars.next().unwrap_or('\\');
        let simple = match e {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' | '\'' | '"' | '?' => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (radix, max_digits) = match e {
            '0'..='7' => (8, 3),
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            _ => return Err(err(format!("invalid escape \"\\{e}\" in string"))),
        };
        let mut digits = String::new();
        if radix == 8 {
            digits.push(e);
        }
        while digits.len() < max_digits && chars.peek().is_some_and(|d| d.is_digit(radix)) {
            digits.extend(chars.next());
        }
        let exact = matches!(e, 'u' | 'U');
        if digits.is_empty() || (exact && digits.len() != max_digits) {
            return Err(err(format!("invalid escape \"\\{e}{digits}\" in string")));
        }
        let n = u32::from_str_radix(&digits, radix).unwrap_or(u32::MAX);
        if exact {
            let ch = char::from_u32(n)
                .ok_or_else(|| err(format!("invalid escape \"\\{e}{digits}\" in string")))?;
            let mut buf = [0; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        } else {
            let b = u8::try_from(n)
                .map_err(|_| err(format!("invalid escape \"\\{e}{digits}\" in string")))?;
            out.push(b);
        }
    }
    Ok(out)
}
