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
