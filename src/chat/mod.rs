//! Chat templates: rendering a checkpoint's Jinja chat template as HF's apply_chat_template does.
