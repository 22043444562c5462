"""SFT data (llmfs.finetune.sft): the hand-written chat template, answer-only labels, padding, packing.

Unit tests run a tiny random transformers Llama (hidden 32, 2 layers) and a byte-level ChatML tokenizer
built here; one integration test loads the real SmolLM2-135M-Instruct (llmfs.finetune.model).
"""

import time

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from llmfs.finetune import sft
from llmfs.finetune.tasks import make_tasks

# SmolLM2-135M-Instruct's chat template, as its GGUF file stores it (tokenizer.chat_template)
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another?"}],
    [{"role": "user", "content": "  spaces \n and\nnew lines  "}, {"role": "assistant", "content": ""}],
    [{"role": "assistant", "content": "I speak first."}],
]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (256 byte tokens, no merges) with SmolLM2's three special tokens and template."""
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>", chat_template=SMOLLM2_TEMPLATE)


def tiny_llama(attn: str = "sdpa", vocab_size: int = 260, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, attn_implementation=attn)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def examples():
    return make_tasks(12, "train", seed=0)


# ------------------------------------------------------------------------------------------------ template


@pytest.mark.parametrize("messages", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_chat_prompt_equals_the_jinja_template(tok, messages, add_generation_prompt):
    expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    assert sft.chat_prompt(messages, add_generation_prompt) == expected


def test_to_messages_puts_the_input_after_a_blank_line():
    ex = {"instruction": "Sort these.", "input": "b, a", "output": "a, b"}
    assert sft.to_messages(ex) == [{"role": "user", "content": "Sort these.\n\nb, a"},
                                   {"role": "assistant", "content": "a, b"}]
    assert sft.to_messages({**ex, "input": ""}, system="S")[:2] == [
        {"role": "system", "content": "S"}, {"role": "user", "content": "Sort these."}]


# ------------------------------------------------------------------------------------------------ labels


def test_labels_are_the_answer_and_its_end_token_only(tok, examples):
    for ex in examples:
        ids, labels = sft.encode_example(tok, ex)
        assert len(ids) == len(labels)
        kept = [i for i, lab in zip(ids, labels) if lab != -100]
        assert kept == tok(ex["output"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
        n = len(kept)
        assert labels[-n:] == ids[-n:] and all(lab == -100 for lab in labels[:-n])  # the answer is the tail
        text = sft.chat_prompt(sft.to_messages(ex))
        assert tok.decode(ids) == text.removesuffix("\n")  # the whole conversation, in the template's format


def test_every_assistant_turn_is_labelled_in_a_multi_turn_conversation(tok):
    conv = CONVERSATIONS[2][:3] + [{"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Red."}]
    ids, labels = sft.encode_example(tok, conv)
    kept = tok.decode([i for i, lab in zip(ids, labels) if lab != -100])
    assert kept == "Blue.<|im_end|>Red.<|im_end|>"
    assert tok.decode(ids) == sft.chat_prompt(conv).removesuffix("\n")


def test_our_masked_loss_equals_the_models_own_loss(tok, examples):
    model = tiny_llama()
    batch = sft.collate([sft.encode_example(tok, e) for e in examples[:4]], pad_id=tok.pad_token_id)
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        ours = sft.sft_loss(model, batch)
    assert torch.allclose(ours, out.loss, rtol=1e-6, atol=1e-6), (ours.item(), out.loss.item())
    # and by hand: the mean over the answer tokens only of -log p(next token)
    logp = out.logits.log_softmax(-1)[:, :-1]
    target = batch["labels"][:, 1:]
    keep = target != -100
    by_hand = -logp.gather(-1, target.clamp(min=0)[..., None])[..., 0][keep].mean()
    assert torch.allclose(ours, by_hand, atol=1e-6)


# ------------------------------------------------------------------------------------------------ padding


def test_padding_does_not_change_the_loss(tok, examples):
    model = tiny_llama()
    pairs = [sft.encode_example(tok, e) for e in examples[:3]]
    with torch.no_grad():
        alone = [sft.sft_loss(model, sft.collate([p], tok.pad_token_id)) for p in pairs]
        # one example padded by 37 tokens (a longer dummy example in the batch, then dropped)
        longer = (pairs[0][0] + [5] * 37, [-100] * (len(pairs[0][0]) + 37))
        padded = sft.collate([pairs[0], longer], tok.pad_token_id)
        one_padded = {k: v[:1] for k, v in padded.items()}
        assert padded["input_ids"].shape[1] == len(pairs[0][0]) + 37
        assert torch.allclose(sft.sft_loss(model, one_padded), alone[0], atol=1e-6)
        # a padded batch: its loss is the mean over all answer tokens of all examples
        batch = sft.collate(pairs, tok.pad_token_id)
        counts = torch.tensor([sum(lab != -100 for lab in p[1][1:]) for p in pairs], dtype=torch.float32)
        expected = (torch.stack(alone) * counts).sum() / counts.sum()
        assert torch.allclose(sft.sft_loss(model, batch), expected, atol=1e-6)


def test_collate_pads_on_the_right():
    batch = sft.collate([([1, 2, 3], [-100, 2, 3]), ([4], [4])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


# ------------------------------------------------------------------------------------------------ packing


def test_pack_layout():
    pairs = [([1, 2, 3], [-100, 2, 3]), ([4, 5], [4, 5]), ([6, 7, 8, 9], [6, 7, 8, 9])]
    packed = sft.pack(pairs, block_size=6, pad_id=0)
    assert packed["input_ids"].tolist() == [[1, 2, 3, 4, 5, 0], [6, 7, 8, 9, 0, 0]]
    assert packed["labels"].tolist() == [[-100, 2, 3, -100, 5, -100], [-100, 7, 8, 9, -100, -100]]
    assert packed["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]]
    assert packed["seq_ids"].tolist() == [[0, 0, 0, 1, 1, 2], [0, 0, 0, 0, 1, 1]]
    mask = sft.block_causal_mask(packed["seq_ids"][:1])[0, 0] == 0  # (T, T): True where attention is allowed
    assert mask.tolist() == [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
                             [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1]]


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_a_packed_row_gives_each_example_the_logits_it_has_alone(tok, examples, attn):
    model = tiny_llama(attn)
    pairs = [sft.encode_example(tok, e) for e in examples[:6]]
    block = max(len(p[0]) for p in pairs) * 3
    packed = sft.pack(pairs, block_size=block, pad_id=tok.pad_token_id)
    assert packed["input_ids"].shape[0] < len(pairs)  # several examples did share a row
    with torch.no_grad():
        logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False,
                       attention_mask=sft.block_causal_mask(packed["seq_ids"])).logits
        # without the mask (positions restarting only), tokens see the previous examples: different logits
        leaky = model(input_ids=packed["input_ids"], attention_mask=torch.ones_like(packed["input_ids"]),
                      position_ids=packed["position_ids"], use_cache=False).logits
        worst, leak, row, start = 0.0, 0.0, 0, 0
        for ids, _ in pairs:  # where pack put each example: in order, a new row when it does not fit
            if start + len(ids) > block:
                row, start = row + 1, 0
            alone = model(input_ids=torch.tensor([ids])).logits[0]  # (n, V)
            assert packed["input_ids"][row, start:start + len(ids)].tolist() == ids
            worst = max(worst, (logits[row, start:start + len(ids)] - alone).abs().max().item())
            leak = max(leak, (leaky[row, start:start + len(ids)] - alone).abs().max().item())
            start += len(ids)
    print(f"\n{attn}: {len(pairs)} examples in {packed['input_ids'].shape[0]} rows; max |packed - alone| = {worst:.1e}, "
          f"without the block mask {leak:.1e}")
    assert worst < 1e-5, f"packed logits differ from separate runs by {worst:.1e}"
    assert leak > 1e-3, "without the block mask the examples should see each other"


def test_packed_loss_equals_the_loss_of_the_examples_padded(tok, examples):
    model = tiny_llama()
    pairs = [sft.encode_example(tok, e) for e in examples[:6]]
    packed = sft.pack(pairs, block_size=max(len(p[0]) for p in pairs) * 2, pad_id=tok.pad_token_id)
    padded = sft.collate(pairs, tok.pad_token_id)
    with torch.no_grad():
        assert torch.allclose(sft.sft_loss(model, packed), sft.sft_loss(model, padded), atol=1e-5)


def test_transformers_own_packing_detection_agrees_with_our_mask(tok, examples):
    """transformers 5 also builds the block-diagonal mask itself from restarting position_ids when no
    attention_mask is given (and no cache is used): the same logits as with ours."""
    model = tiny_llama()
    pairs = [sft.encode_example(tok, e) for e in examples[:4]]
    packed = sft.pack(pairs, block_size=sum(len(p[0]) for p in pairs) + 3, pad_id=tok.pad_token_id)
    with torch.no_grad():
        ours = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False,
                     attention_mask=sft.block_causal_mask(packed["seq_ids"])).logits
        theirs = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits
    assert (ours - theirs).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("call,error,message", [
    (lambda t: sft.chat_prompt("hi"), ValueError, r"messages must be a non-empty list of dicts"),
    (lambda t: sft.chat_prompt([]), ValueError, r"messages must be a non-empty list of dicts"),
    (lambda t: sft.chat_prompt([{"role": "user"}]), ValueError, r"messages must be a non-empty list of dicts"),
    (lambda t: sft.chat_prompt(CONVERSATIONS[0], add_generation_prompt=1), TypeError, r"add_generation_prompt must be"),
    (lambda t: sft.to_messages({"instruction": "x"}), ValueError, r"'instruction', 'input' and 'output'"),
    (lambda t: sft.encode_example(t, [{"role": "user", "content": "hi"}]), ValueError, r"must end with the assistant"),
    (lambda t: sft.encode_example("tok", {"instruction": "a", "input": "", "output": "b"}), TypeError, r"tokenizer"),
    (lambda t: sft.collate([], 0), ValueError, r"non-empty list of \(input_ids, labels\) pairs"),
    (lambda t: sft.collate([([1, 2], [1])], 0), ValueError, r"one length, got lengths 2 and 1"),
    (lambda t: sft.collate([([1, 2], [1, 2])], -1), ValueError, r"pad_id must be a token id"),
    (lambda t: sft.collate([("ab", "ab")], 0), ValueError, r"pairs of int sequences"),
    (lambda t: sft.pack([([1, 2, 3], [1, 2, 3])], 2), ValueError, r"example 0 has 3 tokens, more than block_size=2"),
    (lambda t: sft.pack([([1], [1])], 0), ValueError, r"block_size must be an integer >= 1, got 0"),
    (lambda t: sft.block_causal_mask(torch.zeros(3)), ValueError, r"seq_ids must be a \(batch, time\) integer tensor"),
    (lambda t: sft.block_causal_mask(torch.zeros(1, 3, dtype=torch.long), torch.long), TypeError, r"floating"),
    (lambda t: sft.causal_lm_loss(torch.zeros(1, 3, 5), torch.zeros(1, 3)), ValueError, r"int64 labels"),
    (lambda t: sft.sft_loss("model", {}), TypeError, r"model must be a torch.nn.Module"),
    (lambda t: sft.sft_loss(tiny_llama(), {"input_ids": 1}), ValueError, r"batch must be a dict from collate or pack"),
])
def test_bad_input_raises_a_clear_error(tok, call, error, message):
    with pytest.raises(error, match=message):
        call(tok)


# ------------------------------------------------------------------------------------------------ the real model


@pytest.mark.integration
def test_real_smollm2_template_tokens_and_reload_time():
    """The cached SmolLM2-135M-Instruct (dequantised Q4_1): our chat_prompt equals its tokenizer's
    apply_chat_template, encode_example's ids equal the tokenization of the whole conversation, and a
    reload from the converted copy takes under 5 s."""
    from llmfs.finetune.model import load_smollm2

    t0 = time.perf_counter()
    model, tokenizer = load_smollm2()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, tokenizer = load_smollm2()
    reload = time.perf_counter() - t0
    print(f"\nload_smollm2: first call {first:.2f} s, reload {reload:.2f} s")
    assert reload < 5.0, f"reloading SmolLM2 took {reload:.1f} s"
    assert type(model).__name__ == "LlamaForCausalLM" and model.num_parameters() == 134_515_008

    for messages in CONVERSATIONS:
        for gen in (False, True):
            assert sft.chat_prompt(messages, gen) == tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=gen)
    for ex in make_tasks(24, "test", seed=1):
        ids, labels = sft.encode_example(tokenizer, ex)
        text = sft.chat_prompt(sft.to_messages(ex)).removesuffix("\n")
        assert ids == tokenizer(text, add_special_tokens=False)["input_ids"], ex
        assert labels[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>") == ids[-1]

    # the model answers through the template: greedy decoding of a prompt stops at <|im_end|>
    prompt = tokenizer(sft.chat_prompt([{"role": "user", "content": "What is the capital of France?"}], True),
                       return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, prompt["input_ids"].shape[1]:])
