//! The tokenizer a GGUF file describes in its metadata, built as transformers builds it from the same file (as a
//! `tokenizer.json` for the `tokenizers` crate): the vocabulary, merges (from the file, or derived from the
//! vocabulary for SentencePiece files), special tokens from the token types, and the BOS/EOS post-processor.
//!
//! `tokenizer.ggml.model = llama` (SentencePiece BPE with byte fallback) is built as transformers' `LlamaTokenizer`
//! (Metaspace pre-tokenizer) or, for Gemma files, `GemmaTokenizer` (spaces replaced by `▁`, tokens of blanks
//! respelled, merges ordered by position in the file); `gpt2` (byte-level BPE, as Llama 3 files carry) as
//! `GPT2Tokenizer`, with the split pattern named by `tokenizer.ggml.pre`.

use super::load::{check_merge, quoted};
use crate::checkpoint::gguf::Metadata;
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// llama.cpp's token types.
const CONTROL: i128 = 3;
const USER_DEFINED: i128 = 4;

const SPM_SPACE: char = '\u{2581}';

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split pattern of a byte-level vocabulary's `tokenizer.ggml.pre`, where transformers knows one.
fn split_pattern(pre: &str) -> Option<&'static str> {
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
        | "jina-v5-nano" | "dbrx" | "smaug-bpe" => Some(LLAMA3_SPLIT),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => Some(QWEN2_SPLIT),
        _ => None,
    }
}

/// The special tokens of a GGUF tokenizer, as strings and ids.
#[derive(Clone, Debug, Default)]
pub struct GgufSpecialTokens {
    /// `bos_token`, `eos_token`, `unk_token`, `pad_token` where the file names them: what a chat template sees.
    pub named: Vec<(String, String)>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Ids that end generation: EOS, then llama.cpp's end-of-turn and end-of-message tokens when the file names
    /// them.
    pub stop: Vec<u32>,
}

/// The `tokenizer.json` of the tokenizer a file's metadata describes, and its special tokens: a pure function of
/// the metadata, whose errors name the file and the key, in time and memory near-linear in the metadata's size.
pub fn tokenizer_json(m: &Metadata) -> Result<(Value, GgufSpecialTokens)> {
    let _span = tracing::info_span!("gguf_tokenizer").entered();
    let origin = m.origin();
    let arch = m.str("general.architecture")?;
    let kind = m.opt_str("tokenizer.ggml.model")?.with_context(|| format!("{origin}: no tokenizer.ggml.model"))?;
    let tokens =
        m.opt_strings("tokenizer.ggml.tokens")?.with_context(|| format!("{origin}: no tokenizer.ggml.tokens"))?;
    let types = token_types(m, tokens.len())?;
    let special = special_tokens(m, &tokens)?;
    let token_of = |id: Option<u32>| id.map(|i| tokens[i as usize].to_string());
    let add_bos = m.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(kind == "llama");
    let add_eos = m.opt_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
    let gemma = matches!(arch, "gemma" | "gemma2" | "gemma3");

    let (model, normalizer, pre_tokenizer, decoder, vocab_tokens) = match kind {
        "llama" => {
            let spelled: Vec<String> = if gemma {
                // Tokens of two or more blanks are stored as spaces; the normalizer makes them `▁`s.
                tokens
                    .iter()
                    .map(|t| {
                        if t.contains(' ') && t.trim().is_empty() {
                            SPM_SPACE.to_string().repeat(t.chars().count())
                        } else {
                            t.to_string()
                        }
                    })
                    .collect()
            } else {
                tokens.iter().map(|t| t.to_string()).collect()
            };
            let scores: Vec<f64> = if gemma {
                // Gemma's scores do not follow its merge order; the order of the tokens in the file does.
                (0..spelled.len()).map(|i| -(i as f64)).collect()
            } else {
                let scores = m
                    .opt_numbers("tokenizer.ggml.scores")?
                    .with_context(|| format!("{origin}: a SentencePiece vocabulary without tokenizer.ggml.scores"))?;
                ensure!(scores.len() == tokens.len(), "{origin}: {} scores for {} tokens", scores.len(), tokens.len());
                scores
            };
            let merges = derived_merges(&spelled, &scores, origin)?;
            let unk =
                if gemma { token_of(m.opt_usize("tokenizer.ggml.unknown_token_id")?.map(|i| i as u32)) } else { None };
            let model = bpe_model(&spelled, merges, unk, true, None);
            let (normalizer, pre_tokenizer, decoder) = if gemma {
                (
                    json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}),
                    json!({"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false}),
                    json!({"type": "Sequence", "decoders": [
                        {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
                        {"type": "ByteFallback"}, {"type": "Fuse"}]}),
                )
            } else {
                (
                    Value::Null,
                    json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": false}),
                    json!({"type": "Sequence", "decoders": [
                        {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
                        {"type": "ByteFallback"}, {"type": "Fuse"},
                        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}),
                )
            };
            (model, normalizer, pre_tokenizer, decoder, spelled)
        }
        "gpt2" => {
            let alphabet = byte_alphabet();
            let in_alphabet: HashSet<char> = alphabet.iter().copied().collect();
            let spelled: Vec<String> = tokens
                .iter()
                .map(|t| {
                    if t.chars().all(|c| in_alphabet.contains(&c)) {
                        t.to_string()
                    } else {
                        t.bytes().map(|b| alphabet[b as usize]).collect()
                    }
                })
                .collect();
            let merges = m
                .opt_strings("tokenizer.ggml.merges")?
                .with_context(|| format!("{origin}: a byte-level vocabulary without tokenizer.ggml.merges"))?;
            let merges = merges
                .iter()
                .enumerate()
                .map(|(i, merge)| match merge.split_once(' ') {
                    Some((a, b)) if !b.contains(' ') => Ok((a.to_string(), b.to_string())),
                    _ => bail!("{origin}: tokenizer.ggml.merges[{i}] is {}, not two tokens", quoted(merge)),
                })
                .collect::<Result<Vec<_>>>()?;
            let vocab: HashSet<&str> = spelled.iter().map(String::as_str).collect();
            let mut joined = String::new();
            for (i, (a, b)) in merges.iter().enumerate() {
                let key = || format!("{origin}: tokenizer.ggml.merges[{i}]");
                check_merge(&vocab, 0, (a, b), &key, &mut joined)?;
            }
            let model = bpe_model(&spelled, merges, None, false, Some(""));
            let pre = m.opt_str("tokenizer.ggml.pre")?.unwrap_or("default");
            let pre_tokenizer = match split_pattern(pre) {
                Some(pattern) => json!({"type": "Sequence", "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
                    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}),
                None => {
                    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
                }
            };
            let decoder =
                json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true});
            (model, Value::Null, pre_tokenizer, decoder, spelled)
        }
        other => bail!("{origin}: tokenizer.ggml.model {other:?} is not supported (supported: llama, gpt2)"),
    };

    let added = added_tokens(kind, &tokens, &types, &vocab_tokens, &special)?;
    let post_processor = post_processor(
        add_bos.then(|| special.bos.zip(token_of(special.bos))).flatten(),
        add_eos.then(|| special.eos.zip(token_of(special.eos))).flatten(),
    );
    let json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": decoder,
        "model": model,
    });
    Ok((json, special))
}

fn token_types(m: &Metadata, count: usize) -> Result<Vec<i128>> {
    let Some(items) = m.opt_array("tokenizer.ggml.token_type")? else { return Ok(vec![1; count]) };
    ensure!(items.len() == count, "{}: {} token types for {count} tokens", m.origin(), items.len());
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_i128().with_context(|| {
                format!("{}: tokenizer.ggml.token_type[{i}] is a {}, expected an integer", m.origin(), v.type_name())
            })
        })
        .collect()
}

fn special_tokens(m: &Metadata, tokens: &[&str]) -> Result<GgufSpecialTokens> {
    let id = |key: &str| -> Result<Option<u32>> {
        let Some(id) = m.opt_usize(&format!("tokenizer.ggml.{key}"))? else { return Ok(None) };
        ensure!(id < tokens.len(), "{}: tokenizer.ggml.{key} is {id}, past the {} tokens", m.origin(), tokens.len());
        Ok(Some(id as u32))
    };
    let mut special = GgufSpecialTokens { bos: id("bos_token_id")?, eos: id("eos_token_id")?, ..Default::default() };
    for (name, key) in [
        ("bos_token", "bos_token_id"),
        ("eos_token", "eos_token_id"),
        ("unk_token", "unknown_token_id"),
        ("pad_token", "padding_token_id"),
    ] {
        if let Some(i) = id(key)? {
            special.named.push((name.to_string(), tokens[i as usize].to_string()));
        }
    }
    for key in ["eos_token_id", "eot_token_id", "eom_token_id"] {
        if let Some(i) = id(key)?
            && !special.stop.contains(&i)
        {
            special.stop.push(i);
        }
    }
    Ok(special)
}

/// The added tokens: control tokens as special ones (for byte-level vocabularies only those spelled in the byte
/// alphabet), user-defined tokens present in the vocabulary as plain ones, and the named BOS/EOS/UNK/PAD tokens
/// as special ones; all matched whole in the raw text.
fn added_tokens(
    kind: &str,
    tokens: &[&str],
    types: &[i128],
    vocab_tokens: &[String],
    special: &GgufSpecialTokens,
) -> Result<Vec<Value>> {
    let alphabet: HashSet<char> = byte_alphabet().into_iter().collect();
    let in_vocab: HashSet<&str> = vocab_tokens.iter().map(String::as_str).collect();
    let named: HashSet<&str> = special.named.iter().map(|(_, t)| t.as_str()).collect();
    let mut added = Vec::new();
    for (id, (&token, &kind_of)) in tokens.iter().zip(types).enumerate() {
        let control = kind_of == CONTROL && (kind != "gpt2" || token.chars().all(|c| alphabet.contains(&c)));
        let special_token = control || (named.contains(token) && in_vocab.contains(token));
        let plain = kind_of == USER_DEFINED && in_vocab.contains(token);
        if special_token || plain {
            added.push(json!({"id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": special_token}));
        }
    }
    Ok(added)
}

fn post_processor(bos: Option<(u32, String)>, eos: Option<(u32, String)>) -> Value {
    let special = |token: &str, type_id: u32| json!({"SpecialToken": {"id": token, "type_id": type_id}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    let mut single = Vec::new();
    let mut pair = Vec::new();
    for (seq, type_id, out) in [("A", 0, &mut single), ("B", 1, &mut pair)] {
        if let Some((_, b)) = &bos {
            out.push(special(b, type_id));
        }
        out.push(sequence(seq, type_id));
        if let Some((_, e)) = &eos {
            out.push(special(e, type_id));
        }
    }
    let pair: Vec<Value> = single.iter().cloned().chain(pair).collect();
    let mut tokens = serde_json::Map::new();
    for (id, token) in bos.iter().chain(eos.iter()) {
        tokens.insert(token.clone(), json!({"id": token, "ids": [id], "tokens": [token]}));
    }
    json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": tokens})
}

fn bpe_model(
    tokens: &[String],
    merges: Vec<(String, String)>,
    unk: Option<String>,
    sentencepiece: bool,
    affix: Option<&str>,
) -> Value {
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        vocab.insert(token.clone(), json!(id));
    }
    json!({
        "type": "BPE",
        "dropout": null,
        "unk_token": unk,
        "continuing_subword_prefix": affix,
        "end_of_word_suffix": affix,
        "fuse_unk": sentencepiece,
        "byte_fallback": sentencepiece,
        "ignore_merges": false,
        "vocab": vocab,
        "merges": merges.into_iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
    })
}

/// How many bytes the merges a SentencePiece vocabulary implies may hold per byte of its tokens, beyond
/// [`MERGE_BYTES_FREE`]. A merge holds both parts of a split token, so natural vocabularies, whose tokens split
/// into two tokens in a few ways each, stay below 10; nested runs (`a`, `aa`, `aaa`, ...) hold every split of
/// every run, which grows as the cube of their count while their bytes grow as its square.
const MERGE_BYTES_PER_TOKEN_BYTE: usize = 64;

/// The merge bytes any vocabulary may imply, so that small vocabularies are never refused.
const MERGE_BYTES_FREE: usize = 1 << 20;

/// One merge of [`derived_merges`]: the ids (into the distinct tokens) of the left and right parts, and the key
/// merges are ordered by.
struct Split {
    score: f64,
    left_chars: usize,
    right_chars: usize,
    left: usize,
    right: usize,
}

/// For each token, the longest other token that is a prefix of it (`None` if none, or for an empty token): the
/// chain `parent`, `parent[parent]`, ... lists all of a token's proper prefixes in the vocabulary, longest first.
///
/// In lexicographic order, the tokens between a token and any extension of it all start with it, so one pass over
/// the sorted tokens with a stack of the prefixes of the previous one finds every parent: a token on the stack is a
/// prefix of the next token exactly when it is no longer than the two tokens' common prefix. The cost is the sort
/// plus the common prefixes' lengths, near-linear in the tokens' bytes.
fn longest_prefixes<S: AsRef<[u8]>>(tokens: &[S]) -> Vec<Option<usize>> {
    let mut sorted: Vec<usize> = (0..tokens.len()).filter(|&i| !tokens[i].as_ref().is_empty()).collect();
    sorted.sort_unstable_by(|&a, &b| tokens[a].as_ref().cmp(tokens[b].as_ref()));
    let mut parent = vec![None; tokens.len()];
    let mut stack: Vec<usize> = Vec::new();
    let mut previous: &[u8] = &[];
    for &i in &sorted {
        let token = tokens[i].as_ref();
        let common = previous.iter().zip(token).take_while(|(a, b)| a == b).count();
        while stack.last().is_some_and(|&top| tokens[top].as_ref().len() > common) {
            stack.pop();
        }
        parent[i] = stack.last().copied();
        stack.push(i);
        previous = token;
    }
    parent
}

/// The merges a SentencePiece vocabulary implies, as transformers derives them: every split of every token into
/// two tokens of the vocabulary, best token score first; a token's splits by longer left part first. (A token
/// listed twice keeps its last id and score, as a Python dict does.)
///
/// The splits of a token are where a token that is a prefix of it ends and a token that is a suffix of it starts:
/// both kinds come from [`longest_prefixes`] (of the tokens, and of the tokens reversed), so finding them costs
/// time near-linear in the vocabulary's bytes rather than quadratic in each token's length. The merges hold both
/// parts of each split, so their bytes are counted first and refused past [`MERGE_BYTES_PER_TOKEN_BYTE`] times
/// the vocabulary's bytes (`origin` names the file in the error).
fn derived_merges(tokens: &[String], scores: &[f64], origin: &str) -> Result<Vec<(String, String)>> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    let mut distinct: Vec<&str> = Vec::with_capacity(tokens.len());
    let mut score_of: Vec<f64> = Vec::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        match index.get(token.as_str()) {
            Some(&d) => score_of[d] = scores[id],
            None => {
                index.insert(token, distinct.len());
                distinct.push(token);
                score_of.push(scores[id]);
            }
        }
    }
    let chars: Vec<usize> = distinct.iter().map(|t| t.chars().count()).collect();
    let prefix_of = longest_prefixes(&distinct);
    let reversed: Vec<String> = distinct.iter().map(|t| t.chars().rev().collect()).collect();
    let suffix_of = longest_prefixes(&reversed);

    let vocabulary_bytes: usize = distinct.iter().map(|t| t.len()).sum();
    let limit = vocabulary_bytes.saturating_mul(MERGE_BYTES_PER_TOKEN_BYTE).saturating_add(MERGE_BYTES_FREE);
    let mut merge_bytes = 0usize;
    let mut splits: Vec<Split> = Vec::new();
    let (mut prefixes, mut suffixes) = (Vec::new(), Vec::new());
    for (token, text) in distinct.iter().enumerate() {
        let chain = |parent: &[Option<usize>], out: &mut Vec<usize>| {
            out.clear();
            let mut link = parent[token];
            while let Some(p) = link {
                out.push(p);
                link = parent[p];
            }
        };
        // Prefixes longest first, suffixes longest first: their split positions fall and rise.
        chain(&prefix_of, &mut prefixes);
        chain(&suffix_of, &mut suffixes);
        let mut suffix_iter = suffixes.iter().peekable();
        for &left in prefixes.iter().rev() {
            let at = distinct[left].len();
            while suffix_iter.next_if(|&&right| text.len() - distinct[right].len() < at).is_some() {}
            let Some(&&right) = suffix_iter.peek() else { break };
            if text.len() - distinct[right].len() == at {
                merge_bytes = merge_bytes.saturating_add(text.len());
                splits.push(Split {
                    score: score_of[token],
                    left_chars: chars[left],
                    right_chars: chars[right],
                    left,
                    right,
                });
            }
        }
        if merge_bytes > limit {
            bail!(
                "{origin}: tokenizer.ggml.tokens: the merges these {} SentencePiece tokens imply would hold more than \
                 {limit} bytes, over {MERGE_BYTES_PER_TOKEN_BYTE} times the {vocabulary_bytes} bytes of the tokens \
                 (nested long tokens); refusing to build the tokenizer",
                tokens.len()
            );
        }
    }
    // Highest key first; a stable sort keeps the discovery order of equal keys, as Python's sorted does (equal keys
    // come from different tokens, so the order of one token's splits does not matter).
    splits.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then(b.left_chars.cmp(&a.left_chars)).then(b.right_chars.cmp(&a.right_chars))
    });
    Ok(splits.into_iter().map(|s| (distinct[s.left].to_string(), distinct[s.right].to_string())).collect())
}

/// GPT-2's printable spelling of the 256 byte values.
fn byte_alphabet() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("a Latin-1 code point")
            } else {
                extra += 1;
                char::from_u32(255 + extra).expect("a Latin Extended code point")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_matches_gpt2() {
        let alphabet = byte_alphabet();
        assert_eq!(alphabet[b'A' as usize], 'A');
        assert_eq!(alphabet[b' ' as usize], '\u{120}');
        assert_eq!(alphabet[b'\n' as usize], '\u{10a}');
        assert_eq!(alphabet.iter().collect::<HashSet<_>>().len(), 256);
    }

    fn strings(tokens: &[&str]) -> Vec<String> {
        tokens.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn merges_follow_scores_then_longer_left_parts() {
        let tokens = strings(&["a", "b", "c", "ab", "bc", "abc"]);
        let scores = [0.0, 0.0, 0.0, -1.0, -2.0, -0.5];
        let merges = derived_merges(&tokens, &scores, "f.gguf").unwrap();
        assert_eq!(merges, [("ab", "c"), ("a", "bc"), ("a", "b"), ("b", "c")].map(|(a, b)| (a.into(), b.into())));
    }

    /// transformers' `SentencePieceExtractor`, literally: every split of every token checked by lookups.
    fn transformers_merges(tokens: &[String], scores: &[f64]) -> Vec<(String, String)> {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut order: Vec<&str> = Vec::new();
        let mut score_of: HashMap<&str, f64> = HashMap::new();
        for (id, token) in tokens.iter().enumerate() {
            if ids.insert(token, id).is_none() {
                order.push(token);
            }
            score_of.insert(token, scores[id]);
        }
        let mut merges: Vec<(f64, usize, usize, &str, &str)> = Vec::new();
        for token in order {
            let mut local: Vec<(&str, &str)> = token
                .char_indices()
                .skip(1)
                .map(|(at, _)| token.split_at(at))
                .filter(|(left, right)| ids.contains_key(left) && ids.contains_key(right))
                .collect();
            local.sort_by_key(|(left, right)| (ids[left], ids[right]));
            let score = score_of[token];
            merges.extend(local.into_iter().map(|(l, r)| (score, l.chars().count(), r.chars().count(), l, r)));
        }
        merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
        merges.into_iter().map(|(_, _, _, l, r)| (l.to_string(), r.to_string())).collect()
    }

    #[test]
    fn merges_match_transformers_on_random_vocabularies() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as usize
        };
        let alphabet = ['a', 'b', 'é', '\u{2581}', ' '];
        for round in 0..200 {
            let count = 1 + next(120);
            let tokens: Vec<String> = (0..count)
                .map(|_| (0..next(7)).map(|_| alphabet[next(alphabet.len() as u64 - (round % 3) as u64)]).collect())
                .collect();
            // Few distinct scores, so that keys tie across tokens.
            let scores: Vec<f64> = (0..count).map(|_| -(next(4) as f64)).collect();
            let got = derived_merges(&tokens, &scores, "f.gguf").unwrap();
            assert_eq!(got, transformers_merges(&tokens, &scores), "tokens {tokens:?} scores {scores:?}");
        }
    }

    #[test]
    fn nested_runs_are_refused_naming_the_file_and_key() {
        let tokens: Vec<String> = (1..=400).map(|n| "a".repeat(n)).collect();
        let scores = vec![0.0; tokens.len()];
        let err = derived_merges(&tokens, &scores, "dir/m.gguf").unwrap_err().to_string();
        assert!(err.starts_with("dir/m.gguf: tokenizer.ggml.tokens: the merges these 400 SentencePiece"), "{err}");
        // Fewer runs stay under the bound and give every split.
        let tokens: Vec<String> = (1..=40).map(|n| "a".repeat(n)).collect();
        let merges = derived_merges(&tokens, &scores[..40], "m.gguf").unwrap();
        assert_eq!(merges.len(), 39 * 40 / 2);
    }

    #[test]
    fn a_long_token_costs_time_linear_in_its_length() {
        let mut tokens = strings(&["a", "b", "ab"]);
        tokens.push("ab".repeat(1 << 20));
        tokens.push("ab".repeat((1 << 20) - 1) + "a");
        let scores = vec![0.0; tokens.len()];
        let start = std::time::Instant::now();
        let merges = derived_merges(&tokens, &scores, "m.gguf").unwrap();
        assert!(start.elapsed().as_secs_f64() < 5.0, "{:?}", start.elapsed());
        assert_eq!(merges.len(), 2, "a+b and the long token's split into its first 2 MiB - 1 bytes and b");
    }
}
