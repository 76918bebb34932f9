//! A chat template (Jinja, from a model's tokenizer_config.json or GGUF metadata): compiled, and rendered on a
//! short conversation with and without the generation prompt.

#![no_main]

use glov_cuda::chat::{ChatTemplate, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(source) = std::str::from_utf8(bytes) else { return };
    let tokens = vec![("bos_token".to_string(), "<s>".to_string()), ("eos_token".to_string(), "</s>".to_string())];
    let Ok(template) = ChatTemplate::compile("chat_template", source, tokens) else { return };
    let template = template.with_fixed_now(0);
    let messages = [Message::system("You find prompt templates."), Message::user("Propose one.")];
    for generation_prompt in [false, true] {
        let _ = template.render(&messages, generation_prompt);
    }
});
