//! Model-directory discovery, special tokens and stop ids.

use std::path::Path;

use super::*;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const SIMPLE: &str = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}";

fn user(content: &str) -> Vec<Message> {
    vec![Message::user(content)]
}

#[test]
fn template_string_in_tokenizer_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({"bos_token": "<s>", "eos_token": "</s>", "chat_template": SIMPLE});
    write(dir.path(), TOKENIZER_CONFIG_FILE, &config.to_string());
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&user("hi"), false).unwrap(), "<s><user>hi</s>");
    assert!(t.name().ends_with("tokenizer_config.json (chat_template)"), "{}", t.name());
}

#[test]
fn template_list_uses_default_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "eos_token": "</s>",
        "chat_template": [
            {"name": "tool_use", "template": "TOOLS"},
            {"name": "default", "template": SIMPLE},
            {"name": "rag", "template": "RAG"},
        ],
    });
    write(dir.path(), TOKENIZER_CONFIG_FILE, &config.to_string());
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&user("hi"), false).unwrap(), "<user>hi</s>");
    assert!(t.name().contains("(chat_template \"default\")"), "{}", t.name());

    let config = serde_json::json!({"chat_template": [{"name": "tool_use", "template": "TOOLS"}]});
    write(dir.path(), TOKENIZER_CONFIG_FILE, &config.to_string());
    let err = ChatTemplate::from_model_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("none named \"default\""), "{err}");
}

#[test]
fn chat_template_file_takes_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({"bos_token": "<s>", "chat_template": "FROM CONFIG"});
    write(dir.path(), TOKENIZER_CONFIG_FILE, &config.to_string());
    write(dir.path(), CHAT_TEMPLATE_FILE, "FROM FILE {{ bos_token }}\n");
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    // Jinja drops the single trailing newline of a template.
    assert_eq!(t.render(&user("hi"), false).unwrap(), "FROM FILE <s>");
    assert!(t.name().ends_with(CHAT_TEMPLATE_FILE));

    // The file alone is enough, without a tokenizer_config.json.
    std::fs::remove_file(dir.path().join(TOKENIZER_CONFIG_FILE)).unwrap();
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&user("hi"), false).unwrap(), "FROM FILE ");
}

#[test]
fn added_token_objects_and_null_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "bos_token": {"__type": "AddedToken", "content": "<|begin|>", "lstrip": false, "normalized": true,
                      "rstrip": false, "single_word": false},
        "eos_token": {"content": "<|end|>", "special": true},
        "pad_token": null,
        "unk_token": "<unk>",
        "added_tokens_decoder": {},
        "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}|{{ unk_token }}|{{ pad_token is defined }}",
    });
    write(dir.path(), TOKENIZER_CONFIG_FILE, &config.to_string());
    let cfg = read_tokenizer_config(dir.path()).unwrap();
    assert_eq!(
        cfg.special_tokens,
        SpecialTokens { bos_token: Some("<|begin|>".into()), eos_token: Some("<|end|>".into()), pad_token: None }
    );
    assert_eq!(cfg.special_token("unk_token"), Some("<unk>"));
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.bos_token(), Some("<|begin|>"));
    assert_eq!(t.eos_token(), Some("<|end|>"));
    assert_eq!(t.render(&user("x"), false).unwrap(), "<|begin|>x<|end|>|<unk>|False");
}

#[test]
fn legacy_special_tokens_map_fills_in() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{"eos_token": "</old>", "chat_template": "{{ eos_token }}"}"#);
    write(dir.path(), SPECIAL_TOKENS_MAP_FILE, r#"{"eos_token": {"content": "</s>"}, "pad_token": "<pad>"}"#);
    let cfg = read_tokenizer_config(dir.path()).unwrap();
    assert_eq!(cfg.special_tokens.eos_token.as_deref(), Some("</s>"));
    assert_eq!(cfg.special_tokens.pad_token.as_deref(), Some("<pad>"));
    // With an added_tokens_decoder, HF ignores the legacy file.
    write(
        dir.path(),
        TOKENIZER_CONFIG_FILE,
        r#"{"eos_token": "</new>", "added_tokens_decoder": {}, "chat_template": "{{ eos_token }}"}"#,
    );
    let t = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&user("x"), false).unwrap(), "</new>");
}

#[test]
fn missing_template_is_none() {
    let dir = tempfile::tempdir().unwrap();
    assert!(ChatTemplate::from_model_dir(dir.path()).unwrap().is_none());
    write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{"bos_token": "<s>", "chat_template": null}"#);
    assert!(ChatTemplate::from_model_dir(dir.path()).unwrap().is_none());
    assert_eq!(read_tokenizer_config(dir.path()).unwrap().special_tokens.bos_token.as_deref(), Some("<s>"));
}

#[test]
fn malformed_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), TOKENIZER_CONFIG_FILE, "{not json");
    let err = format!("{:#}", ChatTemplate::from_model_dir(dir.path()).unwrap_err());
    assert!(err.contains(TOKENIZER_CONFIG_FILE), "{err}");
    write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{"chat_template": 3}"#);
    assert!(ChatTemplate::from_model_dir(dir.path()).is_err());
    write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{}"#);
    write(dir.path(), CHAT_TEMPLATE_FILE, "line one\n{% for %}");
    let err = ChatTemplate::from_model_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("syntax error in chat template") && err.contains(CHAT_TEMPLATE_FILE), "{err}");
}

fn vocab(token: &str) -> Option<u32> {
    match token {
        "</s>" => Some(2),
        "<|eot_id|>" => Some(128009),
        _ => None,
    }
}

#[test]
fn stop_ids_from_int_list_and_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    // No files at all: nothing to stop on.
    assert_eq!(stop_token_ids(dir.path(), vocab).unwrap(), Vec::<u32>::new());

    write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{"eos_token": "<|eot_id|>"}"#);
    assert_eq!(stop_token_ids(dir.path(), vocab).unwrap(), vec![128009]);

    write(dir.path(), GENERATION_CONFIG_FILE, r#"{"eos_token_id": 2}"#);
    assert_eq!(stop_token_ids(dir.path(), vocab).unwrap(), vec![2, 128009]);

    write(dir.path(), GENERATION_CONFIG_FILE, r#"{"eos_token_id": [128001, 128008, 128009]}"#);
    assert_eq!(stop_token_ids(dir.path(), vocab).unwrap(), vec![128001, 128008, 128009]);

    write(dir.path(), GENERATION_CONFIG_FILE, r#"{"eos_token_id": null, "bos_token_id": 1}"#);
    assert_eq!(stop_token_ids(dir.path(), vocab).unwrap(), vec![128009]);

    // An eos token the vocabulary does not know adds nothing.
    write(dir.path(), TOKENIZER_CONFIG_FILE, r#"{"eos_token": {"content": "<missing>"}}"#);
    write(dir.path(), GENERATION_CONFIG_FILE, r#"{"eos_token_id": [5, 5, 7]}"#);
    assert_eq!(stop_token_ids(dir.path(), vocab).unwrap(), vec![5, 7]);

    write(dir.path(), GENERATION_CONFIG_FILE, r#"{"eos_token_id": "x"}"#);
    let err = stop_token_ids(dir.path(), vocab).unwrap_err().to_string();
    assert!(err.contains(GENERATION_CONFIG_FILE), "{err}");
}
