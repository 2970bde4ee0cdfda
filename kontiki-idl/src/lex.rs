//! A lossless token stream of a `.kontiki` file, comments included.
//!
//! The pest grammar skips `//` and `/* */` comments (they are not part of the model), so the
//! formatter and the linter read them from here instead. The lexer only splits text into
//! tokens; it is run on text the parser has already accepted, so it can stay small: every
//! atomic rule of the grammar (identifiers, qualified names, topics, numbers, durations) is a
//! run of `[A-Za-z0-9_.+-]` without whitespace, and becomes one [`Tok::Word`].

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// An identifier, keyword, qualified name, topic, number or duration.
    Word,
    /// A string literal, quotes included.
    Str,
    /// `->`
    Arrow,
    /// One punctuation character: `{ } ( ) [ ] < > , ; : = ?`.
    Punct(u8),
    /// `// ...` (not a doc comment), without the line end.
    LineComment,
    /// `/* ... */`
    BlockComment,
    /// `/// ...`, without the line end.
    Doc,
    /// `//! ...`, without the line end.
    InnerDoc,
}

impl Tok {
    /// Whether the token is a comment or a doc comment (not seen by the checker as code).
    pub(crate) fn is_comment(self) -> bool {
        matches!(
            self,
            Tok::LineComment | Tok::BlockComment | Tok::Doc | Tok::InnerDoc
        )
    }
}

/// One token and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: Tok,
    /// Byte offset of the first byte.
    pub(crate) start: usize,
    /// Byte offset one past the last byte.
    pub(crate) end: usize,
}

impl Token {
    /// The token's text.
    pub(crate) fn text<'a>(&self, src: &'a str) -> &'a str {
        &src[self.start..self.end]
    }
}

/// A character the lexer does not know, at a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LexError {
    pub(crate) offset: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'+')
}

/// Splits `src` into tokens, comments included, whitespace dropped.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let line_end = |from: usize| {
        bytes[from..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .map_or(bytes.len(), |p| from + p)
    };
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let kind = match b {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let third = bytes.get(i + 2).copied();
                let fourth = bytes.get(i + 3).copied();
                i = line_end(i);
                match (third, fourth) {
                    (Some(b'/'), Some(b'/')) => Tok::LineComment,
                    (Some(b'/'), _) => Tok::Doc,
                    (Some(b'!'), _) => Tok::InnerDoc,
                    _ => Tok::LineComment,
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let close = src[i + 2..].find("*/").ok_or(LexError { offset: i })?;
                i = i + 2 + close + 2;
                Tok::BlockComment
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n') | Some(b'\r') => return Err(LexError { offset: start }),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                    }
                }
                Tok::Str
            }
            b'-' if bytes.get(i + 1) == Some(&b'>') => {
                i += 2;
                Tok::Arrow
            }
            b'{' | b'}' | b'(' | b')' | b'[' | b']' | b'<' | b'>' | b',' | b';' | b':' | b'='
            | b'?' => {
                i += 1;
                Tok::Punct(b)
            }
            b if is_word_byte(b) => {
                while i < bytes.len()
                    && is_word_byte(bytes[i])
                    && !(bytes[i] == b'-' && bytes.get(i + 1) == Some(&b'>'))
                {
                    i += 1;
                }
                Tok::Word
            }
            _ => return Err(LexError { offset: i }),
        };
        out.push(Token {
            kind,
            start,
            end: i,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Tok, &str)> {
        lex(src)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text(src)))
            .collect()
    }

    #[test]
    fn comments_and_docs_are_told_apart() {
        let src = "//! inner\n/// doc\n// line\n//// four\n/* block */ a";
        assert_eq!(
            kinds(src),
            vec![
                (Tok::InnerDoc, "//! inner"),
                (Tok::Doc, "/// doc"),
                (Tok::LineComment, "// line"),
                (Tok::LineComment, "//// four"),
                (Tok::BlockComment, "/* block */"),
                (Tok::Word, "a"),
            ]
        );
    }

    #[test]
    fn words_keep_atomic_rules_whole() {
        let src = "x: pkg.T = -5 -> user.created 1.5e+3 30s \"a\\\"b\"";
        assert_eq!(
            kinds(src),
            vec![
                (Tok::Word, "x"),
                (Tok::Punct(b':'), ":"),
                (Tok::Word, "pkg.T"),
                (Tok::Punct(b'='), "="),
                (Tok::Word, "-5"),
                (Tok::Arrow, "->"),
                (Tok::Word, "user.created"),
                (Tok::Word, "1.5e+3"),
                (Tok::Word, "30s"),
                (Tok::Str, "\"a\\\"b\""),
            ]
        );
        assert_eq!(kinds("T->U")[1], (Tok::Arrow, "->"));
    }

    #[test]
    fn unknown_characters_are_errors() {
        assert_eq!(lex("a $").unwrap_err(), LexError { offset: 2 });
        assert!(lex("\"open").is_err());
        assert!(lex("/* open").is_err());
    }
}
