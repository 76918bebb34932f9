//! PTX text to tokens. Comments are dropped, and so are the line-terminated debug directives `.loc` and `.file`
//! (they carry no `;`). Opcodes with their modifiers (`ld.global.nc.v4.u32`), directives (`.reg`), registers
//! (`%tid.x`) and symbols are single words; `::` inside a word (`.shared::cta`) stays part of it.

use super::Error;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    Word(String),
    /// A numeric literal as written (`0f3F800000`, `0x1F`, `9.0`, `42`); the sign is a separate `-`.
    Num(String),
    Str(String),
    Punct(char),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub line: u32,
}

fn word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '_' | '$' | '%' | '.')
}

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '%' | '.')
}

pub fn tokenize(text: &str) -> Result<Vec<Token>, Error> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1u32;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = line;
            i += 2;
            loop {
                match chars.get(i) {
                    None => return Err(Error::new(start, "unterminated /* comment")),
                    Some('*') if chars.get(i + 1) == Some(&'/') => break,
                    Some('\n') => line += 1,
                    Some(_) => {}
                }
                i += 1;
            }
            i += 2;
        } else if c == '"' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\n' {
                    return Err(Error::new(line, "unterminated string"));
                }
                i += 1;
            }
            if i == chars.len() {
                return Err(Error::new(line, "unterminated string"));
            }
            tokens.push(Token { tok: Tok::Str(chars[start..i].iter().collect()), line });
            i += 1;
        } else if word_start(c) {
            let start = i;
            while i < chars.len() {
                if word_char(chars[i]) {
                    i += 1;
                } else if chars[i] == ':' && chars.get(i + 1) == Some(&':') {
                    i += 2;
                } else {
                    break;
                }
            }
            let word: String = chars[start..i].iter().collect();
            if word == ".loc" || word == ".file" {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            } else {
                tokens.push(Token { tok: Tok::Word(word), line });
            }
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token { tok: Tok::Num(chars[start..i].iter().collect()), line });
        } else if "{}()[],;:@!|+-<>=".contains(c) {
            tokens.push(Token { tok: Tok::Punct(c), line });
            i += 1;
        } else {
            return Err(Error::new(line, format!("unexpected character {c:?}")));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn words_numbers_and_punctuation() {
        let w = |s: &str| Tok::Word(s.into());
        assert_eq!(
            toks("@!%p1 ld.shared::cta.v4.u32 {%r1,_}, [%rd2+-4]; // x"),
            vec![
                Tok::Punct('@'),
                Tok::Punct('!'),
                w("%p1"),
                w("ld.shared::cta.v4.u32"),
                Tok::Punct('{'),
                w("%r1"),
                Tok::Punct(','),
                w("_"),
                Tok::Punct('}'),
                Tok::Punct(','),
                Tok::Punct('['),
                w("%rd2"),
                Tok::Punct('+'),
                Tok::Punct('-'),
                Tok::Num("4".into()),
                Tok::Punct(']'),
                Tok::Punct(';'),
            ]
        );
    }

    #[test]
    fn debug_lines_and_comments_vanish_but_count_lines() {
        let tokens =
            tokenize(".loc 1 2 3, function_name $L__x\n/* a\nb */ $L__BB0_2:\n.file 1 \"x.cu\"\nret;").unwrap();
        assert_eq!(tokens[0], Token { tok: Tok::Word("$L__BB0_2".into()), line: 3 });
        assert_eq!(tokens[2], Token { tok: Tok::Word("ret".into()), line: 5 });
    }
}
