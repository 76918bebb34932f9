//! Building a `tokenizers::Tokenizer` from a `tokenizer.json` document that a stranger may have written.
//!
//! The `tokenizers` crate trusts a BPE model's merges: it copies both parts of each merge into a buffer as long
//! as the longest vocabulary token, so a merge whose result is longer than every token panics (slice index out
//! of range), as does a second part shorter than the model's `continuing_subword_prefix`. Every merge is
//! therefore checked here first, as BPE requires anyway (both parts and their concatenation in the vocabulary),
//! and any panic the crate still raises while building is caught at this boundary and becomes an error naming
//! the file.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The most characters of a token an error message quotes.
const QUOTED_CHARS: usize = 48;

/// `token` for an error message: quoted, and cut after [`QUOTED_CHARS`] characters with its length in bytes.
pub(super) fn quoted(token: &str) -> String {
    match token.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}... ({} bytes)", &token[..cut], token.len()),
        None => format!("{token:?}"),
    }
}

/// Checks that merge `left right` is one the `tokenizers` crate can build: both parts are tokens of `vocab`, and
/// so is `left` followed by `right` less its first `prefix_len` bytes (the crate drops the continuing-subword
/// prefix's length, as bytes, from the second part). `key` names the merge in the error. `joined` is a scratch
/// buffer.
pub(super) fn check_merge(
    vocab: &HashSet<&str>,
    prefix_len: usize,
    (left, right): (&str, &str),
    key: &dyn Fn() -> String,
    joined: &mut String,
) -> Result<()> {
    for part in [left, right] {
        if !vocab.contains(part) {
            bail!("{} merges {} and {}: {} is not in the vocabulary", key(), quoted(left), quoted(right), quoted(part));
        }
    }
    if right.len() < prefix_len || !right.is_char_boundary(prefix_len) {
        bail!(
            "{} merges {} and {}: the second part does not start with a {prefix_len}-byte continuing-subword prefix",
            key(),
            quoted(left),
            quoted(right)
        );
    }
    joined.clear();
    joined.push_str(left);
    joined.push_str(&right[prefix_len..]);
    if !vocab.contains(joined.as_str()) {
        let (left, right, joined) = (quoted(left), quoted(right), quoted(joined));
        bail!("{} merges {left} and {right} into {joined}, which is not in the vocabulary", key());
    }
    Ok(())
}

/// Checks the merges of a BPE `model` (a tagged `"type": "BPE"` one, or an untagged one with `vocab` and
/// `merges`) in both forms the crate reads: `["left", "right"]` pairs and legacy `"left right"` strings (where
/// `#version` lines are skipped). What the crate would refuse as malformed is left for it to report.
fn check_bpe_merges(model: &Value) -> Result<()> {
    let Some(model) = model.as_object() else { return Ok(()) };
    if model.get("type").is_some_and(|t| t != "BPE") {
        return Ok(());
    }
    let (Some(Value::Object(vocab)), Some(Value::Array(merges))) = (model.get("vocab"), model.get("merges")) else {
        return Ok(());
    };
    let vocab: HashSet<&str> = vocab.keys().map(String::as_str).collect();
    let prefix_len = model.get("continuing_subword_prefix").and_then(Value::as_str).map_or(0, str::len);
    let mut joined = String::new();
    for (i, merge) in merges.iter().enumerate() {
        let key = || format!("model.merges[{i}]");
        let parts = match merge {
            Value::String(line) if line.starts_with("#version") => continue,
            Value::String(line) => match line.split_once(' ') {
                Some((left, right)) if !right.contains(' ') => (left, right),
                _ => bail!("{} is {}, not two tokens separated by a space", key(), quoted(line)),
            },
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(left), Value::String(right)] => (left.as_str(), right.as_str()),
                _ => bail!("{} is not a pair of tokens", key()),
            },
            _ => bail!("{} is neither a pair of tokens nor a string", key()),
        };
        check_merge(&vocab, prefix_len, parts, &key, &mut joined)?;
    }
    Ok(())
}

/// Checks that every special token a `TemplateProcessing` post-processor (alone or inside a `Sequence`) places in
/// its `single` or `pair` template is defined in its `special_tokens`, and that its `single` template places only
/// the one sequence there is (`A`): the `tokenizers` crate looks each up while encoding and panics on a missing one.
fn check_template_processing(processor: &Value) -> Result<()> {
    // By shape, not by `type`: the crate reads a post-processor by whichever variant its fields fit.
    for (i, inner) in processor.get("processors").and_then(Value::as_array).into_iter().flatten().enumerate() {
        check_template_processing(inner).with_context(|| format!("processors[{i}]"))?;
    }
    let defined = processor.get("special_tokens").and_then(Value::as_object);
    for part in ["single", "pair"] {
        for (i, piece) in processor.get(part).and_then(Value::as_array).into_iter().flatten().enumerate() {
            let sequence = piece.get("Sequence").and_then(|s| s.get("id")).and_then(Value::as_str);
            if part == "single" && sequence.is_some_and(|id| id != "A") {
                bail!(
                    "single[{i}] places sequence {:?}, but a single input has only sequence \"A\"",
                    sequence.unwrap_or("")
                );
            }
            let Some(id) = piece.get("SpecialToken").and_then(|t| t.get("id")).and_then(Value::as_str) else {
                continue;
            };
            if !defined.is_some_and(|tokens| tokens.contains_key(id)) {
                bail!("{part}[{i}] places the special token {id:?}, which special_tokens does not define");
            }
        }
    }
    Ok(())
}

/// Builds a tokenizer from a parsed `tokenizer.json` document; `origin` (the file) is named in every error.
/// Merges are checked first, and a panic inside the `tokenizers` crate becomes an error.
pub fn tokenizer_from_json(json: Value, origin: &str) -> Result<tokenizers::Tokenizer> {
    if let Some(model) = json.get("model") {
        check_bpe_merges(model).with_context(|| format!("{origin}: an invalid BPE model"))?;
    }
    if let Some(processor) = json.get("post_processor") {
        check_template_processing(processor).with_context(|| format!("{origin}: an invalid post_processor"))?;
    }
    let built = catch_unwind(AssertUnwindSafe(|| serde_json::from_value::<tokenizers::Tokenizer>(json)));
    match built {
        Ok(Ok(tokenizer)) => Ok(tokenizer),
        Ok(Err(e)) => Err(anyhow!("cannot build the tokenizer of {origin}: {e}")),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            Err(anyhow!("cannot build the tokenizer of {origin}: the tokenizers crate failed on it ({what})"))
        }
    }
}

/// Builds a tokenizer from the bytes of a `tokenizer.json` file named `origin`.
pub fn tokenizer_from_bytes(bytes: &[u8], origin: &str) -> Result<tokenizers::Tokenizer> {
    let json: Value = serde_json::from_slice(bytes).with_context(|| format!("cannot parse {origin} as JSON"))?;
    tokenizer_from_json(json, origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bpe(merges: Value, prefix: Option<&str>) -> Value {
        json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
            "pre_tokenizer": null, "post_processor": null, "decoder": null,
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": prefix,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": {"a": 0, "b": 1, "ab": 2, "é": 3, "##b": 4}, "merges": merges},
        })
    }

    fn error(json: Value) -> String {
        format!("{:#}", tokenizer_from_json(json, "dir/tokenizer.json").unwrap_err())
    }

    #[test]
    fn valid_merges_build_in_both_forms() {
        for merges in [json!([["a", "b"]]), json!(["#version: 0.2", "a b"])] {
            let tokenizer = tokenizer_from_json(bpe(merges, None), "t.json").unwrap();
            assert_eq!(tokenizer.encode("ab", false).unwrap().get_ids(), &[2]);
        }
        let tokenizer = tokenizer_from_json(bpe(json!([["a", "##b"]]), Some("##")), "t.json").unwrap();
        assert_eq!(tokenizer.get_vocab_size(false), 5);
    }

    #[test]
    fn a_merge_longer_than_every_token_is_an_error_not_a_panic() {
        let err = error(bpe(json!([["ab", "ab"]]), None));
        assert!(err.contains("dir/tokenizer.json") && err.contains("model.merges[0]"), "{err}");
        assert!(err.contains("\"abab\", which is not in the vocabulary"), "{err}");
    }

    #[test]
    fn merges_name_the_part_that_is_missing() {
        let err = error(bpe(json!(["a b", "a zz"]), None));
        assert!(err.contains("model.merges[1]") && err.contains("\"zz\" is not in the vocabulary"), "{err}");
        let err = error(bpe(json!(["a b c"]), None));
        assert!(err.contains("model.merges[0] is \"a b c\", not two tokens"), "{err}");
    }

    #[test]
    fn a_second_part_shorter_than_the_prefix_is_an_error() {
        let err = error(bpe(json!([["a", "b"]]), Some("###")));
        assert!(err.contains("3-byte continuing-subword prefix"), "{err}");
        // Dropping one byte of "é" would leave half a character.
        let err = error(bpe(json!([["a", "é"]]), Some("#")));
        assert!(err.contains("1-byte continuing-subword prefix"), "{err}");
    }

    #[test]
    fn long_tokens_are_quoted_short() {
        let long = "x".repeat(1000);
        assert_eq!(quoted(&long), format!("\"{}\"... (1000 bytes)", "x".repeat(QUOTED_CHARS)));
        assert_eq!(quoted("é"), "\"é\"");
    }

    #[test]
    fn other_models_and_malformed_files_are_errors_naming_the_file() {
        let err = format!("{:#}", tokenizer_from_bytes(b"{", "m/tokenizer.json").unwrap_err());
        assert!(err.contains("cannot parse m/tokenizer.json as JSON"), "{err}");
        let mut json = bpe(json!([]), None);
        json["model"] = json!({"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"});
        assert!(tokenizer_from_json(json, "t.json").is_ok());
        let mut json = bpe(json!([]), None);
        json["model"]["vocab"] = json!([]);
        assert!(error(json).contains("cannot build the tokenizer of dir/tokenizer.json"));
    }

    /// A template that places a special token it does not define (found by the `tokenizer_json` fuzz target): an
    /// error at load, where the `tokenizers` crate would panic at the first encoding.
    #[test]
    fn a_post_processor_placing_an_undefined_special_token_is_an_error() {
        let processor = |id: &str| {
            json!({"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": id, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]}}})
        };
        let mut json = bpe(json!([]), None);
        json["model"] = json!({"type": "WordLevel", "vocab": {"<s>": 0, "a": 1}, "unk_token": "a"});
        json["post_processor"] = processor("<s>");
        let tokenizer = tokenizer_from_json(json.clone(), "t.json").unwrap();
        assert_eq!(tokenizer.encode("a", true).unwrap().get_ids(), [0, 1]);
        json["post_processor"] = processor("<x>");
        let err = error(json.clone());
        assert!(err.contains("single[0] places the special token \"<x>\""), "{err}");
        json["post_processor"] = json!({"type": "Sequence", "processors": [processor("<x>")]});
        assert!(error(json.clone()).contains("processors[0]"));
        json["post_processor"] = processor("<x>");
        json["post_processor"]["typE"] = json["post_processor"]["type"].take();
        let err = error(json.clone());
        assert!(err.contains("single[0]") && err.contains("dir/tokenizer.json"), "{err}");
        // A single input has one sequence, A (found by the same fuzz target).
        json["post_processor"] = processor("<s>");
        json["post_processor"]["single"][1]["Sequence"]["id"] = json!("B");
        let err = error(json);
        assert!(err.contains("single[1] places sequence \"B\""), "{err}");
    }
}
