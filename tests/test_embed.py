"""llmfs.rag.embed: our all-MiniLM-L6-v2 gives sentence-transformers' vectors (cosine >= 0.99999 per sentence)
from the same cached weights, its encoder gives transformers' BertModel token vectors, padding and batching
change nothing, long texts are cut at 256 tokens as sentence-transformers cuts them, bad input is refused."""

import numpy as np
import pytest
import torch

from llmfs.data import kjv_verses
from llmfs.rag.embed import BertConfig, MiniLM, minilm_folder

QUICKSTART = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
ODD = ["", "   padded   ", "naïve café, 東京, emoji 🙂", "word " * 400, "UPPER lower MiXeD", "a"]


@pytest.fixture(scope="module")
def ours():
    torch.manual_seed(0)
    return MiniLM.load()


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_folder()), device="cpu")


def test_the_folder_is_sentence_transformers_layout():
    folder = minilm_folder()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json"):
        assert (folder / name).is_file(), name


def test_quickstart_cosines(ours):
    E = ours.encode(QUICKSTART)
    assert E.shape == (3, 384) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(E[0] @ E.T, [1.0, 0.6660, 0.1046], atol=1e-4)  # sentence-transformers' documented values


def test_equal_to_sentence_transformers(ours, reference):
    texts = QUICKSTART + ODD + kjv_verses()[:24]
    mine = ours.encode(texts, batch_size=7)  # batches of mixed lengths: padding inside most of them
    theirs = reference.encode(texts, batch_size=16, convert_to_numpy=True)
    cosines = (mine * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() >= 0.99999, f"lowest cosine {cosines.min():.7f} for {texts[cosines.argmin()][:40]!r}"
    assert np.abs(mine - theirs).max() < 1e-5


def test_token_vectors_equal_transformers_bert(ours):
    from transformers import BertModel

    bert = BertModel.from_pretrained(minilm_folder(), add_pooling_layer=False).eval()
    batch = ours.tokenizer(["In the beginning God created the heaven and the earth.", "Jesus wept."],
                           padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = bert(**batch).last_hidden_state
        mine = ours(batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert (mine[real] - theirs[real]).abs().max() < 1e-4


def test_batching_and_padding_change_nothing(ours):
    alone = ours.encode(["Jesus wept."])
    beside_long = ours.encode(["Jesus wept.", kjv_verses()[0] * 3], batch_size=2)
    np.testing.assert_allclose(beside_long[0], alone[0], atol=1e-6)


def test_long_texts_are_cut_at_256_tokens(ours):
    long = "word " * 1000
    assert ours.max_length == 256
    np.testing.assert_allclose(ours.encode([long]), ours.encode(["word " * 254]), atol=1e-6)  # 254 + [CLS] [SEP]


@pytest.mark.parametrize("texts, batch_size, message", [
    ("a sentence", 8, "wrap it in a list"),
    ([], 8, "non-empty list of str"),
    (["ok", 3], 8, "non-empty list of str"),
    (None, 8, "non-empty list of str"),
    (["ok"], 0, "batch_size must be an integer >= 1"),
    (["ok"], 2.5, "batch_size must be an integer >= 1"),
])
def test_bad_input_is_a_clear_value_error(ours, texts, batch_size, message):
    with pytest.raises(ValueError, match=message):
        ours.encode(texts, batch_size=batch_size)


def test_bad_weights_and_ids_are_refused():
    from safetensors.torch import load_file

    small = MiniLM(BertConfig(vocab_size=50, dim=8, n_layer=1, n_head=2, hidden_dim=16))
    with pytest.raises(ValueError, match="has no tokenizer"):
        small.encode(["x"])
    with pytest.raises(ValueError, match="weights missing"):
        small.load_hf_state_dict({"embeddings.word_embeddings.weight": torch.zeros(50, 8)})
    with pytest.raises(ValueError, match="do not fit this config"):  # every name is there, in other shapes
        small.load_hf_state_dict(load_file(str(minilm_folder() / "model.safetensors")))
    with pytest.raises(ValueError, match=r"\(batch, time\) integer tensors"):
        small(torch.zeros(2, 3), torch.ones(2, 3))
