//! The schema-less tree of fields (with their positions) a config parses into.

use super::*;

#[derive(Debug)]
pub(super) struct Field {
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) column: usize,
    /// Whether `:` followed the name; scalar fields require it.
    pub(super) colon: bool,
    pub(super) value: Value,
}

#[derive(Debug)]
pub(super) enum Value {
    Scalar(Scalar),
    Message(Vec<Field>),
    /// `[a, b]` short repeated syntax; items are never lists.
    List(Vec<(Value, usize, usize)>),
}

#[derive(Debug)]
pub(super) enum Scalar {
    /// Concatenation of adjacent string literals, unescaped.
    Str(Vec<u8>),
    Ident(String),
    Number(String),
}

impl Value {
    pub(super) fn describe(&self) -> String {
        match self {
            Value::Scalar(Scalar::Str(b)) => {
                format!("string {:?}", String::from_utf8_lossy(b))
            }
            Value::Scalar(Scalar::Ident(s)) | Value::Scalar(Scalar::Number(s)) => {
                format!("\"{s}\"")
            }
            Value::Message(_) => "a message".to_owned(),
            Value::List(_) => "a list".to_owned(),
        }
    }
}

pub(super) struct Parser {
    pub(super) tokens: Vec<Token>,
    pub(super) pos: usize,
}

impl Parser {
    pub(super) fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    pub(super) fn next(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if t.kind != Kind::Eof {
            self.pos += 1;
        }
        t
    }

    pub(super) fn eat(&mut self, punct: char) -> bool {
        if self.peek().is(punct) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Fields up to `close` (or end of input for the top level).
    pub(super) fn body(&mut self, close: Option<char>) -> Result<Vec<Field>> {
        let mut fields = Vec::new();
        loop {
            let t = self.peek();
            match close {
                Some(c) if t.is(c) => {
                    self.pos += 1;
                    return Ok(fields);
                }
                Some(c) if t.kind == Kind::Eof => {
                    return Err(ConfigError::at(
                        t.line,
                        t.column,
                        None,
                        format!("expected \"{c}\", got end of file"),
                    ));
                }
                None if t.kind == Kind::Eof => return Ok(fields),
                _ => {}
            }
            fields.push(self.field()?);
        }
    }

    pub(super) fn field(&mut self) -> Result<Field> {
        let name = self.next();
        if name.is('[') {
            return Err(ConfigError::at(
                name.line,
                name.column,
                None,
                "extension and Any fields are not supported".to_owned(),
            ));
        }
        if name.kind != Kind::Ident {
            return Err(ConfigError::at(
                name.line,
                name.column,
                None,
                format!("expected a field name, got {}", name.describe()),
            ));
        }
        let colon = self.eat(':');
        let value = if self.eat('[') {
            let mut items = Vec::new();
            if !self.eat(']') {
                loop {
                    let t = self.peek();
                    let (line, column) = (t.line, t.column);
                    items.push((self.value(&name.text)?, line, column));
                    if self.eat(']') {
                        break;
                    }
                    self.expect(',')?;
                }
            }
            Value::List(items)
        } else {
            // Scalars without ':' are parsed anyway so that an unknown
            // field name is reported first, as Python does.
            self.value(&name.text)?
        };
        if !self.eat(',') {
            self.eat(';');
        }
        Ok(Field {
            name: name.text,
            line: name.line,
            column: name.column,
            colon,
            value,
        })
    }

    pub(super) fn expect(&mut self, punct: char) -> Result<()> {
        if self.eat(punct) {
            return Ok(());
        }
        let t = self.peek();
        Err(ConfigError::at(
            t.line,
            t.column,
            None,
            format!("expected \"{punct}\", got {}", t.describe()),
        ))
    }

    /// A message (`{...}` / `<...>`) or a scalar.
    pub(super) fn value(&mut self, field: &str) -> Result<Value> {
        if self.eat('{') {
            return Ok(Value::Message(self.body(Some('}'))?));
        }
        if self.eat('<') {
            return Ok(Value::Message(self.body(Some('>'))?));
        }
        let t = self.next();
        match t.kind {
            Kind::Ident => Ok(Value::Scalar(Scalar::Ident(t.text))),
            Kind::Number => Ok(Value::Scalar(Scalar::Number(t.text))),
            Kind::Str => {
                let mut bytes = unescape(&t)?;
                while self.peek().kind == Kind::Str {
                    let more = self.next();
                    bytes.extend(unescape(&more)?);
                }
                Ok(Value::Scalar(Scalar::Str(bytes)))
            }
            Kind::Punct | Kind::Eof => Err(ConfigError::at(
                t.line,
                t.column,
                Some(field),
                format!(
                    "expected a value for field \"{field}\", got {}",
                    t.describe()
                ),
            )),
        }
    }
}
