#!/usr/bin/env python3
"""Generate examples/tiny-llm/: a tiny random-weight Llama for the optimize quick start.

Its vocabulary is a few dozen words that prompt templates are made of, plus the
slot `<category>` as one token and Llama-3 style special tokens, so that even
random weights sample answers that parse into (meaningless) templates: the whole
GLOV loop, guidance included, runs in seconds on a CPU. The weights are random
(seeded); nothing it writes means anything.

The tokenizer is a word-level tokenizers model (whitespace and punctuation split,
unknown words -> <unk>); `<category>` and the specials are added tokens, matched
before splitting. The chat template is Llama 3's header/eot format.
"""
import json
import os

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, decoders
from transformers import LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-llm")

WORDS = """a an the of in on with photo picture image sketch drawing painting rendering close-up
blurry bright dark small large cropped clean tiny big good bad itap art origami toy plastic
my one this that type kind . , : - ! and or showing featuring centered""".split()
SLOT = "<category>"
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def build_tokenizer():
    vocab = {"<unk>": 0}
    for word in WORDS + ["system", "user", "assistant"]:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok.add_tokens([SLOT])
    tok.add_special_tokens(SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos)]
    )
    return tok


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = build_tokenizer()
    tok.save(os.path.join(OUT, "tokenizer.json"))
    tok = Tokenizer.from_file(os.path.join(OUT, "tokenizer.json"))
    vocab_size = tok.get_vocab_size()
    ids = {t: tok.token_to_id(t) for t in SPECIALS}
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rope_theta=10000.0,
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=[ids["<|end_of_text|>"], ids["<|eot_id|>"]],
        tie_word_embeddings=False,
        # Wider than the usual 0.02 so that the random model has preferences a steering offset can move.
        initializer_range=0.3,
    )
    torch.manual_seed(20241008)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(OUT, safe_serialization=True)
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "bos_token": "<|begin_of_text|>",
                "eos_token": "<|eot_id|>",
                "chat_template": CHAT_TEMPLATE,
                "model_max_length": 1024,
                "tokenizer_class": "PreTrainedTokenizerFast",
            },
            f,
            indent=1,
        )
    with open(os.path.join(OUT, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": config.bos_token_id, "eos_token_id": config.eos_token_id}, f, indent=1)
    # A round trip through the saved files: the slot is one token, and decoding joins words with spaces.
    enc = tok.encode("a blurry photo of a <category>.")
    assert tok.token_to_id(SLOT) in enc.ids, enc.tokens
    print(OUT, "vocab", vocab_size, "decode:", tok.decode(enc.ids))


if __name__ == "__main__":
    main()
