"""llmfs.finetune.evaluate: batched left-padded greedy replies equal one-at-a-time ones; exact match counts
right, wrong and cut replies; the tokenizer is left as it was; bad arguments raise clear errors."""

import pytest
import torch
import torch.nn as nn
from test_sft import tiny_llama, tiny_tokenizer  # the tiny random Llama and ChatML tokenizer of the SFT tests

from llmfs.finetune import evaluate, sft
from llmfs.finetune.tasks import make_tasks


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def examples():
    return make_tasks(7, "test", seed=3)


def test_batched_replies_equal_one_at_a_time(tok, examples):
    model = tiny_llama().eval()
    batched = evaluate.greedy_replies(model, tok, examples, batch_size=4)
    alone = evaluate.greedy_replies(model, tok, examples, batch_size=1)  # no padding at all
    assert batched == alone and len(batched) == len(examples)
    assert tok.padding_side == "right", "the tokenizer's padding side must be restored"


class Oracle(nn.Module):
    """A stand-in LM whose generate() writes a fixed reply per prompt: right, wrong, or never ending."""

    def __init__(self, tok, replies: dict[str, str | None]):
        super().__init__()
        self.tok, self.replies = tok, replies
        self.w = nn.Parameter(torch.zeros(1))

    @property
    def device(self):
        return self.w.device

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        assert (attention_mask[:, -1] == 1).all(), "prompts must be padded on the left"
        rows = []
        for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
            prompt = self.tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=False)
            reply = self.replies[prompt]
            new = self.tok(reply, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id] if reply is not None \
                else self.tok("x" * max_new_tokens, add_special_tokens=False)["input_ids"]
            new = (new + [self.tok.pad_token_id] * max_new_tokens)[:max_new_tokens]
            rows.append(ids + new)
        return torch.tensor(rows)


def test_exact_match_counts_right_wrong_and_cut(tok, examples):
    prompt = {id(e): sft.chat_prompt(sft.to_messages(e)[:-1], add_generation_prompt=True) for e in examples}
    wanted = [e["output"].upper() + "." for e in examples[:3]] + ["no"] * 2 + [None] * 2  # 3 right, 2 wrong, 2 cut
    oracle = Oracle(tok, {prompt[id(e)]: w for e, w in zip(examples, wanted)})
    score, replies, right = evaluate.exact_match(oracle, tok, examples, batch_size=3)
    assert right[:3] == [e["family"] != "uppercase" or e["output"].upper() == e["output"] for e in examples[:3]]
    assert right[3:] == [False] * 4 and score == sum(right) / 7
    assert replies[3] == "no" and all(r.endswith(evaluate.CUT) for r in replies[5:])


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "gpt"}, "model must be"),
    ({"tokenizer": 3}, "tokenizer must be"),
    ({"examples": {"output": "1"}}, "examples must be"),
    ({"examples": [{"input": "x"}]}, "examples must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"slack": -1}, "slack must be"),
    ({"batch_size": True}, "batch_size must be"),
])
def test_bad_arguments_have_clear_errors(tok, examples, kwargs, message):
    args = {"model": tiny_llama(), "tokenizer": tok, "examples": examples[:1], **kwargs}
    with pytest.raises((TypeError, ValueError), match=message):
        evaluate.exact_match(**args)


def test_generate_ids_stop_at_eos_within_each_budget(tok, examples):
    prompts = [sft.chat_prompt(sft.to_messages(e)[:-1], add_generation_prompt=True) for e in examples[:4]]
    oracle = Oracle(tok, dict(zip(prompts, ["yes", "a much longer reply than the budget", None, "no"])))
    ids = evaluate.generate_ids(oracle, tok, prompts, max_new=[6, 3, 5, 6], batch_size=3)
    assert ids[0] == tok("yes", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert len(ids[1]) == 3 and tok.eos_token_id not in ids[1], "a reply is cut at its own budget"
    assert len(ids[2]) == 5 and tok.eos_token_id not in ids[2]
    assert ids[3][-1] == tok.eos_token_id and tok.pad_token_id not in ids[3][:-1], "nothing after <eos>"
    model = tiny_llama().eval()
    batched, alone = (evaluate.generate_ids(model, tok, prompts, 4, batch_size=b) for b in (4, 1))
    assert batched == alone


@pytest.mark.parametrize("kwargs, message", [
    ({"prompts": "one prompt"}, "prompts must be"),
    ({"prompts": [1, 2]}, "prompts must be"),
    ({"max_new": 0}, "max_new must be"),
    ({"max_new": [3, 3]}, "max_new must be"),
    ({"max_new": 2.5}, "max_new must be"),
    ({"batch_size": 0}, "batch_size must be"),
])
def test_generate_ids_bad_arguments(tok, kwargs, message):
    args = {"model": tiny_llama(), "tokenizer": tok, "prompts": ["a"], "max_new": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        evaluate.generate_ids(**args)
