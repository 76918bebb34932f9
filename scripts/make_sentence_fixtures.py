#!/usr/bin/env python3
"""Generate tiny random sentence-transformers models and what sentence-transformers computes with them.

The Rust tests (`tests/sentence_golden.rs`) load each directory as glov-cuda does and compare with:

    tests/fixtures/sentence/mpnet-mean/      MPNet (relative position buckets shared by all layers, RoBERTa-style
                                             position ids), mean pooling, a Normalize module, max_seq_length 20,
                                             in the older sentence-transformers layout that all-mpnet-base-v2 has
                                             (sentence_bert_config.json with max_seq_length and do_lower_case,
                                             pooling_mode_* flags, sentence_transformers.models.* module types)
    tests/fixtures/sentence/bert-cls/        BERT, CLS pooling, no Normalize, do_lower_case, max_seq_length 12,
                                             in sentence-transformers 6's layout (the length in tokenizer_config.json,
                                             the lower-casing in tokenizer.json)
    tests/fixtures/sentence/bert-max/        BERT, max pooling, no Normalize, max_seq_length 24 (6's layout)
    tests/fixtures/sentence/expected.json    per model: the texts, their token ids (from the tokenizer.json file,
                                             with the Python `tokenizers` library, truncated as sentence-transformers
                                             truncates), and `SentenceTransformer.encode`'s embeddings; and MPNet's
                                             relative position buckets for distances -140..140, from HF's own
                                             function

The tokenizers are WordPiece ones built here (a BERT normaliser that lower-cases, BERT pre-tokenisation), with the
special tokens each family has: MPNet's `<s> <pad> </s> <unk>` (the pad token is id 1, as MPNet's position ids
assume), BERT's `[PAD] [UNK] [CLS] [SEP]`. `tokenizer_config.json` names `PreTrainedTokenizerFast`, so that
sentence-transformers tokenises with the file itself; the script checks that its ids equal the file's.

Run from the repository root:  python3 scripts/make_sentence_fixtures.py
(needs torch, transformers, tokenizers and sentence-transformers)
"""

import json
import os
import shutil

import torch
from sentence_transformers import SentenceTransformer, models
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(REPO, "tests", "fixtures", "sentence")

WORDS = (
    "a photo of the dog cat fire truck oak tree sail boat red house golden retriever tabby it is small large "
    "with and in on near road old green leaves blurry picture something heavy wild long tail describe image "
    "category this what looks like"
).split()
PIECES = ["##s", "##ing", "##ed", "##y", "##er", "##ly", "##a", "##e", "##o", "##t", "##r", "##n", "##l"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
PUNCTUATION = list(".,?!:;'\"-()")

TEXTS = [
    "A photo of a dog.",
    "a photo of a dog.",
    "Golden retriever",
    "It is a small red fire truck near the old road, with a long tail and green leaves.",
    "What does this image describe? A blurry picture of something heavy.",
    "Zyxwv quokkas!",
    "tabby cat",
    "sail",
    "An oak tree in the wild, " * 6,
    "",
]


def vocabulary(specials):
    vocab = {}
    for token in specials + PUNCTUATION + LETTERS + WORDS + PIECES:
        if token not in vocab:
            vocab[token] = len(vocab)
    return vocab


def tokenizer(specials, first, last, unk):
    t = Tokenizer(WordPiece(vocabulary(specials), unk_token=unk, max_input_chars_per_word=100))
    t.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    t.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    t.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}",
        pair=f"{first} $A {last} $B:1 {last}:1",
        special_tokens=[(first, t.token_to_id(first)), (last, t.token_to_id(last))],
    )
    t.decoder = decoders.WordPiece(prefix="##")
    return t


def save_transformer(directory, model, tok, special):
    model.save_pretrained(directory, safe_serialization=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512, **special}
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)


def legacy_layout(directory, config, pooling, normalize, max_seq_length, lower_case):
    """Rewrites a saved model's module files as sentence-transformers 2 wrote them (all-mpnet-base-v2's)."""
    types = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling"]
    paths = ["", "1_Pooling"]
    if normalize:
        types.append("sentence_transformers.models.Normalize")
        paths.append("2_Normalize")
        shutil.rmtree(os.path.join(directory, "2_Normalize"))
        os.makedirs(os.path.join(directory, "2_Normalize"))
    modules = [{"idx": i, "name": str(i), "path": p, "type": t} for i, (p, t) in enumerate(zip(paths, types))]
    write_json(os.path.join(directory, "modules.json"), modules)
    modes = ["cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens"]
    chosen = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens"}[pooling]
    pool = {"word_embedding_dimension": config.hidden_size}
    pool.update({f"pooling_mode_{m}": m == chosen for m in modes})
    write_json(os.path.join(directory, "1_Pooling", "config.json"), pool)
    write_json(
        os.path.join(directory, "sentence_bert_config.json"),
        {"max_seq_length": max_seq_length, "do_lower_case": lower_case},
    )
    tok_config_path = os.path.join(directory, "tokenizer_config.json")
    with open(tok_config_path) as f:
        tok_config = json.load(f)
    tok_config["model_max_length"] = 512
    write_json(tok_config_path, tok_config)


def build(name, family, pooling, normalize, max_seq_length, lower_case, seed, legacy=False):
    torch.manual_seed(seed)
    if family == "mpnet":
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        tok = tokenizer(specials, "<s>", "</s>", "<unk>")
        vocab_size = tok.get_vocab_size() + 1
        config = MPNetConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            relative_attention_num_buckets=32,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
        )
        model = MPNetModel(config, add_pooling_layer=False)
        special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    else:
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
        tok = tokenizer(specials, "[CLS]", "[SEP]", "[UNK]")
        config = BertConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=24,
            num_hidden_layers=2,
            num_attention_heads=3,
            intermediate_size=48,
            max_position_embeddings=40,
            type_vocab_size=2,
            pad_token_id=0,
            hidden_act="gelu",
            layer_norm_eps=1e-12,
        )
        model = BertModel(config, add_pooling_layer=False)
        special = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]"}
    # Larger than the default initialisation, so that every layer moves the embeddings visibly.
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    model.eval()

    directory = os.path.join(OUT, name)
    shutil.rmtree(directory, ignore_errors=True)
    transformer_dir = os.path.join(directory, "_hf")
    save_transformer(transformer_dir, model, tok, special)
    transformer = models.Transformer(
        transformer_dir, max_seq_length=max_seq_length, do_lower_case=lower_case,
        model_args={"attn_implementation": "eager"},
    )
    modules = [transformer, models.Pooling(config.hidden_size, pooling_mode=pooling)]
    if normalize:
        modules.append(models.Normalize())
    st = SentenceTransformer(modules=modules, device="cpu")
    st.save(directory)
    shutil.rmtree(transformer_dir)
    os.remove(os.path.join(directory, "README.md"))
    if legacy:
        legacy_layout(directory, config, pooling, normalize, max_seq_length, lower_case)

    st = SentenceTransformer(directory, device="cpu")
    file_tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    ids = []
    for text in TEXTS:
        shown = text.lower() if lower_case else text
        enc = file_tok.encode(shown)
        row = enc.ids
        if len(row) > max_seq_length:
            row = row[: max_seq_length - 1] + [row[-1]]
        st_ids = st.tokenize([text])["input_ids"][0].tolist()
        assert st_ids == row, (name, text, st_ids, row)
        ids.append(row)
    embeddings = st.encode(TEXTS, batch_size=4, convert_to_numpy=True)
    return {
        "family": family,
        "pooling": pooling,
        "normalize": normalize,
        "max_seq_length": max_seq_length,
        "texts": TEXTS,
        "ids": ids,
        "embeddings": [[float(x) for x in row] for row in embeddings],
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {
        "mpnet-mean": build("mpnet-mean", "mpnet", "mean", True, 20, False, 1, legacy=True),
        "bert-cls": build("bert-cls", "bert", "cls", False, 12, True, 2),
        "bert-max": build("bert-max", "bert", "max", False, 24, False, 3),
    }
    distances = torch.arange(-140, 141)
    buckets = MPNetEncoder.relative_position_bucket(distances, num_buckets=32, max_distance=128)
    expected["mpnet_buckets"] = {"distances": distances.tolist(), "buckets": buckets.tolist()}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
