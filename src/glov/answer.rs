//! The answer parser: one raw LLM answer in, one prompt template (class slot written `{}`) out, or a rejection.
//!
//! The LLM is asked for a single template with a `<category>` slot, but instruction-tuned models wrap it in chatter,
//! numbering, markdown and quotes. The rules, in order:
//!
//! 1. A whitespace-only answer is [`Rejection::Empty`].
//! 2. In every line, each class-placeholder spelling becomes `{}`: a bracketed `category`, `category name`, `class`,
//!    `class name`, `classname`, `class_name` or `class label` in `<>`, `{}`, `[]` or `{{}}`, any case, with spaces,
//!    `_` or `-` between the words; an empty `{}` is the slot itself. Other bracketed words (`<object>`, `[label]`)
//!    are not class placeholders, and a bare word ("a photo of a category") is no slot either.
//! 3. Only lines holding a slot are candidates; none is [`Rejection::NoSlot`]. One template is one line: lines are
//!    never joined, so a template cut at the token limit is taken as far as it goes.
//! 4. Each candidate is cleaned: a quoted span (`"…"`, `“…”`, `«…»`, `„…“` or backticks) holding a slot and more is
//!    taken alone, which drops a label before and an explanation after it; `*` and backticks are markdown, never
//!    template text, and go everywhere; white space runs become one space; then, repeatedly, the line loses from its
//!    edges heading (`#`), blockquote (`>`), list (`- `, `+ `, `• `) and emphasis (`_`) marks, numbering (`1.`,
//!    `1)`, `1:`, `(1)`), surrounding or unmatched quotes of every kind, and a label before the slot.
//! 5. A label is the text before the first `:`, ` - `, `–` or `—` on the slot's left, when it names a template
//!    ("Template", "New prompt template", "Option 2", "Here's my answer") or opens with chatter ("Sure! ...",
//!    "Here is ..."). So "a photo of a <category>: a type of pet." keeps its colon.
//! 6. The first candidate is the template, unless it ends with `:`: that is a line introducing the template ("Here
//!    is one using <category>:"), and a later candidate wins if there is one.
//! 7. A template over [`MAX_CHARS`] characters is [`Rejection::TooLong`]: that is a rambling paragraph, not a prompt.

use crate::scoring::templates::{LLM_SLOT, SLOT};

/// Longest accepted template, in characters.
pub const MAX_CHARS: usize = 300;

/// Why an answer gave no template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Nothing but white space.
    Empty,
    /// No line holds a class slot.
    NoSlot,
    /// The template line is longer than [`MAX_CHARS`].
    TooLong,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejection::Empty => "empty answer",
            Rejection::NoSlot => "no class slot",
            Rejection::TooLong => "template too long",
        })
    }
}

/// Turns one raw LLM answer into a template with `{}` slots, following the module's rules.
pub fn parse_answer(raw: &str) -> Result<String, Rejection> {
    if raw.trim().is_empty() {
        return Err(Rejection::Empty);
    }
    let candidates: Vec<String> =
        raw.lines().map(replace_slots).filter(|line| line.contains(SLOT)).map(|line| clean(&line)).collect();
    let template =
        candidates.iter().find(|t| !t.ends_with(':')).or(candidates.first()).ok_or(Rejection::NoSlot)?.clone();
    if template.chars().count() > MAX_CHARS {
        return Err(Rejection::TooLong);
    }
    Ok(template)
}

/// Turns one raw LLM answer into a whole question (the encoder-decoder path, where a prompt has no class slot), as
/// the reference reads it: of the first line that keeps any text, the last `:`-separated piece (which drops a
/// label such as "New prompt:"), without markdown, list or numbering marks and surrounding quotes, white space
/// runs made one space.
pub fn parse_question(raw: &str) -> Result<String, Rejection> {
    let question = raw
        .lines()
        .map(|line| {
            let piece = line.rsplit(':').next().unwrap_or_default();
            let piece: String = piece.chars().filter(|c| !matches!(c, '*' | '`')).collect();
            let mut s = piece.split_whitespace().collect::<Vec<_>>().join(" ");
            while let Some(next) = [strip_marks, strip_number, strip_quotes].iter().find_map(|strip| strip(&s)) {
                s = next.trim().to_string();
            }
            s
        })
        .find(|q| !q.is_empty())
        .ok_or(Rejection::Empty)?;
    if question.chars().count() > MAX_CHARS {
        return Err(Rejection::TooLong);
    }
    Ok(question)
}

/// Writes a template the way the LLM is shown it: `{}` becomes `<category>`.
pub fn to_llm_form(template: &str) -> String {
    template.replace(SLOT, LLM_SLOT)
}

/// Placeholder names, lower case with separators removed.
const SLOT_NAMES: [&str; 5] = ["category", "categoryname", "class", "classname", "classlabel"];

/// Bracket pairs a placeholder may sit in; `{{` before `{` so that the double form is seen whole.
const SLOT_BRACKETS: [(&str, &str); 4] = [("{{", "}}"), ("{", "}"), ("<", ">"), ("[", "]")];

/// Rewrites every placeholder spelling in `line` as `{}`.
fn replace_slots(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        match slot_len(rest) {
            Some(len) => {
                out.push_str(SLOT);
                rest = &rest[len..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Length in bytes of the placeholder `s` starts with, if it starts with one.
fn slot_len(s: &str) -> Option<usize> {
    SLOT_BRACKETS.iter().find_map(|&(open, close)| {
        let body = s.strip_prefix(open)?;
        let inner = &body[..body.find(close)?];
        let name: String =
            inner.chars().filter(|c| !matches!(c, ' ' | '_' | '-')).flat_map(char::to_lowercase).collect();
        let is_slot = SLOT_NAMES.contains(&name.as_str()) || (name.is_empty() && open.starts_with('{'));
        is_slot.then_some(open.len() + inner.len() + close.len())
    })
}

/// Cleans one candidate line (rule 4).
fn clean(line: &str) -> String {
    let line = line.replace("```", "`");
    let line: String = quoted_span(&line).unwrap_or(&line).chars().filter(|c| !matches!(c, '*' | '`')).collect();
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut s = line.as_str();
    while let Some(next) = strip_once(s) {
        s = next.trim();
    }
    s.to_string()
}

/// Quote pairs that delimit a template inside a sentence. Single quotes are left out: they double as apostrophes.
const SPAN_QUOTES: [(char, char); 5] = [('"', '"'), ('“', '”'), ('«', '»'), ('„', '“'), ('`', '`')];

/// The first quoted span that holds a slot and more than the slot; an unclosed quote runs to the end of the line.
fn quoted_span(line: &str) -> Option<&str> {
    let mut rest = line;
    while let Some((at, open)) = rest.char_indices().find(|&(_, c)| SPAN_QUOTES.iter().any(|&(o, _)| o == c)) {
        let close = SPAN_QUOTES.iter().find(|&&(o, _)| o == open).map(|&(_, c)| c)?;
        let body = &rest[at + open.len_utf8()..];
        let end = body.find(close).unwrap_or(body.len());
        let span = &body[..end];
        if span.contains(SLOT) && span.trim() != SLOT {
            return Some(span);
        }
        rest = body.get(end + close.len_utf8()..)?;
    }
    None
}

/// Takes one decoration off the edges of `s`, or says there is none left.
fn strip_once(s: &str) -> Option<&str> {
    let strippers: [fn(&str) -> Option<&str>; 4] = [strip_marks, strip_number, strip_quotes, strip_label];
    strippers.iter().find_map(|strip| strip(s))
}

/// Heading, blockquote, list and emphasis marks.
fn strip_marks(s: &str) -> Option<&str> {
    let trimmed = s.trim_start_matches(['#', '>', '•', '_']).trim_end_matches('_');
    if trimmed.len() < s.len() {
        return Some(trimmed);
    }
    ["- ", "+ ", "– "].iter().find_map(|marker| s.strip_prefix(marker))
}

/// List numbering: `1.`, `1)`, `1:` or `(1)`, followed by a space.
fn strip_number(s: &str) -> Option<&str> {
    let t = s.strip_prefix('(').unwrap_or(s);
    let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let rest = t[digits..].strip_prefix(['.', ')', ':'])?;
    (rest.is_empty() || rest.starts_with(' ')).then_some(rest)
}

/// Quote pairs that may surround a whole template.
const EDGE_QUOTES: [(char, char); 6] = [('"', '"'), ('\'', '\''), ('“', '”'), ('‘', '’'), ('«', '»'), ('„', '“')];

/// A pair of quotes around the whole line, or an opening or closing quote that has no partner.
fn strip_quotes(s: &str) -> Option<&str> {
    EDGE_QUOTES.iter().find_map(|&(open, close)| {
        if let Some(inner) = s.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            Some(inner)
        } else if let Some(rest) = s.strip_prefix(open)
            && !has_quote(rest, close)
        {
            Some(rest)
        } else {
            s.strip_suffix(close).filter(|body| !has_quote(body, open))
        }
    })
}

/// Whether `s` holds the quote character `q` other than as an apostrophe (a single quote inside a word, as in
/// "dog's" or "{}'s").
fn has_quote(s: &str, q: char) -> bool {
    s.char_indices().any(|(i, c)| {
        let before = s[..i].chars().next_back().is_some_and(|b| b.is_alphanumeric() || b == '}');
        let after = s[i + c.len_utf8()..].chars().next().is_some_and(char::is_alphanumeric);
        c == q && !(matches!(q, '\'' | '’') && before && after)
    })
}

/// Words that make the text before a separator a label wherever they stand in it.
const LABEL_NOUNS: [&str; 7] = ["template", "prompt", "answer", "output", "response", "suggestion", "option"];

/// Words that make the text before a separator chatter when they open it.
const CHATTER_OPENERS: [&str; 5] = ["here", "sure", "okay", "certainly", "absolutely"];

/// A label and its separator before the first slot (rule 5).
fn strip_label(s: &str) -> Option<&str> {
    let head = &s[..s.find(SLOT)?];
    let (at, sep) = [":", " - ", "–", "—"].iter().filter_map(|&sep| Some((head.find(sep)?, sep))).min()?;
    let words: Vec<String> =
        head[..at].split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let first_is_chatter = words.first().is_some_and(|w| CHATTER_OPENERS.contains(&w.as_str()));
    let names_template = words.iter().any(|w| LABEL_NOUNS.contains(&w.as_str()));
    (first_is_chatter || names_template).then(|| &s[at + sep.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_is_the_last_colon_piece_of_its_first_line_with_text() {
        let q = |raw: &str| parse_question(raw);
        assert_eq!(
            q("New prompt: What is the main object in this picture"),
            Ok("What is the main object in this picture".into())
        );
        assert_eq!(q("Here is one:\n1. **\"Which animal is shown\"**\nmore"), Ok("Which animal is shown".into()));
        assert_eq!(q("- Name the   flower in the photo?"), Ok("Name the flower in the photo?".into()));
        assert_eq!(q("Prompt: Identify: the breed"), Ok("the breed".into()));
        assert_eq!(q("  \n\t"), Err(Rejection::Empty));
        assert_eq!(q("Prompt:\n"), Err(Rejection::Empty));
        assert_eq!(q(&"why ".repeat(100)), Err(Rejection::TooLong));
        // A class slot is no longer special: the whole line is the question.
        assert_eq!(q("a photo of a <category>."), Ok("a photo of a <category>.".into()));
    }

    #[test]
    fn slot_spellings() {
        assert_eq!(replace_slots("<Category> {{ class }} [class_name] {} <CLASS-NAME>"), "{} {} {} {} {}");
        assert_eq!(replace_slots("<object> [label] <> [] a category"), "<object> [label] <> [] a category");
        assert_eq!(replace_slots("«<category>»"), "«{}»");
    }

    #[test]
    fn quoted_spans() {
        assert_eq!(quoted_span(r#"Try "a {} photo." - it helps"#), Some("a {} photo."));
        assert_eq!(quoted_span(r#"a "{}" and "a {}"#), Some("a {}"));
        assert_eq!(quoted_span(r#"a "fluffy" {}"#), None);
    }

    #[test]
    fn labels_need_a_label_word() {
        assert_eq!(strip_label("New prompt template: a {}"), Some(" a {}"));
        assert_eq!(strip_label("Option 2 – a {}"), Some(" a {}"));
        assert_eq!(strip_label("Close-up: a {}"), None);
        assert_eq!(strip_label("a {}: a type of pet"), None);
    }

    #[test]
    fn apostrophes_are_not_quotes() {
        assert!(!has_quote("a {}'s toy", '\''));
        assert!(has_quote("a {}'", '\''));
        assert_eq!(strip_quotes("'a {}'s toy"), Some("a {}'s toy"));
    }
}
