"""The dataset loaders return what the sources hold (shapes, first labels, sizes and hashes checked by opening the files)."""

import json

import numpy as np

from llmfs import data


def test_mnist_shapes_labels_and_pixels():
    m = data.load_mnist()
    assert m.x_train.shape == (60000, 28, 28) and m.x_test.shape == (10000, 28, 28)
    assert m.x_train.dtype == np.uint8 and m.y_train.dtype == np.uint8
    assert m.y_train[:5].tolist() == [5, 0, 4, 1, 9] and m.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(m.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(m.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(m.x_train.mean() - 33.318) < 1e-3
    x_train, y_train, x_test, y_test = m  # also unpacks as a tuple
    assert not x_train.flags.writeable


def test_kjv_text():
    verses = data.kjv_verses()
    assert len(verses) == 31103
    assert verses[0] == "In the beginning God created the heaven and the earth."
    text = data.load_kjv()
    assert len(set(text)) == 65 and text.count("\n") == 31103


def test_hamlet_and_rotten_tomatoes():
    assert "To be, or not to be" in data.load_hamlet()
    rows = data.load_rotten_tomatoes()
    counts = {c: sum(r["category"] == c for r in rows) for c in ("fresh", "rotten", "plot")}
    assert len(rows) == 13905 and counts == {"fresh": 7403, "rotten": 5405, "plot": 1097}


def test_gpt2_bpe_files_build_tiktokens_gpt2_encoding():
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str

    encoder_json, vocab_bpe = data.gpt2_bpe_files()
    assert len(json.loads(encoder_json.read_text())) == 50257
    ranks = data_gym_to_mergeable_bpe_ranks(str(vocab_bpe), str(encoder_json))
    enc = tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256})
    assert enc.encode("Hello world") == [15496, 995]


def test_pydoc_topics():
    topics = data.load_pydoc_topics()
    assert len(topics) > 50 and "assignment" in topics
