"""Bad arguments to the public Python API raise ValueError or TypeError, never anything else.

Each entry of ``CASES`` is one public function (core, basics, pretrain, finetune, rag; ``llmfs.kernels`` has its own
fuzz test) with a call that works and, per argument, values that must not: wrong shapes, dtypes,
devices, Python types (None, str, float for int, bool, nested lists), negative / zero / huge / NaN /
inf numbers, unknown option strings. Hypothesis breaks exactly one argument of the working call and
checks that the call raises ``ValueError`` or ``TypeError`` with a message; ``test_valid_calls_work``
checks that the unbroken calls do work, so each failure comes from the broken argument.
``test_the_fuzz_made_enough_calls`` counts the bad calls (at least 500) and prints the count.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # figures off-screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from llmfs import assets, config, data, plots  # noqa: E402
from llmfs.basics import autograd, conv, mlp_numpy, schedule, torch_loop  # noqa: E402
from llmfs.finetune import classify, dpo, federated, lora, qlora, tasks  # noqa: E402
from llmfs.pretrain import attention, bpe, checkpoint, decoding, gpt, llama, lm_data, moe, positions, seq2seq, train  # noqa: E402
from llmfs.rag import bm25, chunk, codeqa, embed, hybrid, index, metrics, rerank, store  # noqa: E402

EXAMPLES_PER_FUNCTION = 8
MIN_CALLS = 500

# ------------------------------------------------------------------------------------------------ bad values

NOT_NUMBERS = [None, "1", [1], b"1", {}, 1j, object()]
NOT_INTS = NOT_NUMBERS + [2.5, True, float("nan"), float("inf"), [[1, 2]]]
NEGATIVE = [-1, -(2**40), st.integers(max_value=-1)]
BAD_COUNT = NOT_INTS + NEGATIVE + [0]  # where an integer >= 1 is expected
BAD_INDEX = NOT_INTS + NEGATIVE  # where an integer >= 0 is expected
NOT_FINITE = [float("nan"), float("inf"), -float("inf")]
BAD_POSITIVE = NOT_NUMBERS + NOT_FINITE + [0, -1.5, True, st.floats(max_value=0.0)]  # where a number > 0 is expected
BAD_PROBABILITY = NOT_NUMBERS + NOT_FINITE + [-0.1, 1.0, 1e9, True]  # where a number in [0, 1) is expected
NOT_TENSORS = [None, 3, "abc", [[1, 2]], np.zeros((1, 3), dtype=np.int64)]
BAD_DEVICES = ["gpu", "cuda:99", "tpu", "cpu:0", "cuda:x", "CPU0", 0, None, ["cpu"]]
if not torch.cuda.is_available():
    BAD_DEVICES.append("cuda")
if not torch.backends.mps.is_available():
    BAD_DEVICES.append("mps")
META = "meta"  # a device with no data: the tensor is on the wrong device for every model here


def floats(*shape, dtype=torch.float32, device="cpu"):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(dtype=dtype, device=device)


# ------------------------------------------------------------------------------------------------ what is called

TMP = Path(tempfile.mkdtemp(prefix="llmfs-api-errors-"))
atexit.register(shutil.rmtree, TMP, True)
torch.manual_seed(0)
RNG = np.random.default_rng(0)

# basics
PARAMS = mlp_numpy.init_params([4, 3, 2], np.random.default_rng(0), dtype=np.float64)
X, Y = RNG.standard_normal((5, 4)), np.array([0, 1, 1, 0, 1])
LOGITS_NP, CACHE = mlp_numpy.forward(PARAMS, X)
DLOGITS = mlp_numpy.cross_entropy(LOGITS_NP, Y)[1]
GRADS = mlp_numpy.backward(PARAMS, CACHE, DLOGITS)
VELOCITY = [(np.zeros_like(W), np.zeros_like(b)) for W, b in PARAMS]
IMG, WEIGHT, BIAS = RNG.standard_normal((2, 3, 5, 5)), RNG.standard_normal((4, 3, 3, 3)), np.zeros(4)
CONV_OUT, CONV_CACHE = conv.conv2d_forward(IMG, WEIGHT, BIAS, stride=1, pad=1)
COLS = conv.im2col(IMG, 3, 3, 1, 1)
POOL_OUT, POOL_CACHE = conv.maxpool2d_forward(IMG, 2)
NET = nn.Linear(4, 3)
LOADER = DataLoader(TensorDataset(floats(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])), batch_size=3)
SGD = torch.optim.SGD(NET.parameters(), lr=0.1)

# pretrain
GPT = gpt.GPT(gpt.GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)).eval()
LLAMA = llama.Llama(llama.LlamaConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_kv_head=1, n_embd=8,
                                      hidden_dim=16)).eval()
S2S = seq2seq.Transformer(src_vocab=7, tgt_vocab=7, d_model=8, n_heads=2, n_layers=1, d_ff=16, dropout=0.0, max_len=10).eval()
MHA = attention.MultiHeadAttention(8, 2).eval()
IDS = torch.tensor([[1, 2, 3]])
LOGITS = floats(1, 11)
Q, K, V = floats(2, 4, 8), floats(2, 6, 8), floats(2, 6, 5)
COS, SIN = positions.rope_cache(4, 3)
ROPE_X = floats(1, 2, 3, 4)
CHAR = bpe.CharTokenizer.from_text("hello world")
BPE = bpe.BPETokenizer.train("hello world, hello there, low lower lowest " * 3, vocab_size=270)
CKPT = checkpoint.save_checkpoint(TMP / "gpt.safetensors", GPT)
LLAMA_CKPT = checkpoint.save_checkpoint(TMP / "llama.safetensors", LLAMA)
CORRUPT = TMP / "corrupt.safetensors"
CORRUPT.write_bytes(CKPT.read_bytes()[:100])
FOREIGN = TMP / "foreign.safetensors"
save_file({"w": torch.zeros(2)}, str(FOREIGN))  # a safetensors file, but no llmfs checkpoint
DATA_DIR = lm_data.prepare_data("hello world " * 40, TMP / "data", CHAR.encode, CHAR.vocab_size)
TOKENS = lm_data.load_tokens(DATA_DIR, "train")
CFG = train.TrainConfig(data_dir=str(DATA_DIR), n_layer=1, n_head=2, n_embd=8, block_size=4, batch_size=2,
                        max_iters=2, eval_iters=1, final_eval_iters=1, warmup_iters=0, device="cpu")
SRC = torch.tensor([[3, 4, 5]])
MOE = moe.MoE(8, 16, n_experts=4, top_k=2).eval()
ROUTER_LOGITS = floats(6, 4)

# finetune
LORA_LAYER = lora.LoRALinear(nn.Linear(4, 3), r=2, alpha=4.0)
LORA_NET = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))  # modules "0", "1" (no Linear), "2"
LORA_MODEL = lora.apply_lora(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), r=2, alpha=4.0, target_modules="0")
LORA_FILE = lora.save_lora(TMP / "adapter.safetensors", LORA_MODEL)
LORA_OTHER_ALPHA = lora.apply_lora(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), r=2, alpha=8.0,
                                   target_modules="0")
NF4_W = floats(4, 8)
NF4_Q = qlora.quantize_nf4(NF4_W, block_size=4, double_quant=True)
NF4_LAYER = qlora.NF4Linear(nn.Linear(8, 4), block_size=4)
LABELS = torch.tensor([[-100, 1, 2, 3], [-100, -100, 4, -100]])
MASK = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])  # right- and left-padded rows
BAD_MASKS = NOT_TENSORS + [MASK.float() * 0.5, MASK * 2, torch.zeros(2, 4, dtype=torch.long), MASK[0], MASK[None],
                           MASK.to(META)]


class TinyBody(nn.Module):
    """A stand-in for a transformers base model: embeddings and config.hidden_size."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(hidden_size=6)
        self.embed = nn.Embedding(10, 6)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, position_ids=None, **kwargs):
        return SimpleNamespace(last_hidden_state=self.embed(input_ids) if inputs_embeds is None else inputs_embeds)


CLASSIFIER = classify.SequenceClassifier(TinyBody(), n_classes=2)
TASKS = tasks.make_tasks(24, "train", seed=0)
STATES = [{"a": floats(2, 3), "b": floats(4)}, {"a": floats(2, 3), "b": floats(4)}]
CLS_BATCH = {"input_ids": torch.tensor([[1, 2, 3, 0], [0, 4, 5, 6]]), "attention_mask": MASK, "labels": torch.tensor([0, 1])}


# rag
VECS = RNG.standard_normal((12, 4)).astype(np.float32)
NAN_VECS = VECS.copy()
NAN_VECS[2, 1] = np.nan
BAD_VECTORS = [None, "v", 3, VECS[:, :3], VECS[0], VECS[None], VECS[:0], NAN_VECS, VECS * np.inf, VECS > 0,
               np.full((2, 4), "a"), [[1.0, 2.0]]]
FLAT = index.FlatIndex(4)
FLAT.add(VECS)
IVF = index.IVFIndex(4, 3)
IVF.train(VECS)
IVF.add(VECS)
HNSW = index.HNSWIndex(4, M=4, ef_construction=8)
HNSW.add(VECS)
BM25 = bm25.BM25([["a", "b"], ["b", "c", "c"]])
TINY_BERT = embed.MiniLM(embed.BertConfig(dim=8, n_layer=1, n_head=2, hidden_dim=16),
                         tokenizer=__import__("transformers").AutoTokenizer.from_pretrained(embed.minilm_folder())).eval()
BERT_IDS, BERT_MASK = torch.tensor([[101, 7592, 102, 0]]), torch.tensor([[1, 1, 1, 0]])
UNIT_VECS = VECS / np.linalg.norm(VECS, axis=1, keepdims=True)
TINY_LM = __import__("transformers").LlamaForCausalLM(__import__("transformers").LlamaConfig(
    vocab_size=49152, hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
    num_key_value_heads=1)).eval()  # SmolLM2's vocabulary, a tiny random body: the checks, not the quality
SMOL_TOKENIZER = __import__("transformers").AutoTokenizer.from_pretrained(assets.converted("smollm2_135m_instruct"))


def lora_on_copy(model, **kwargs):
    """``lora.apply_lora`` on a copy: the working call wraps in place, and may run any number of times."""
    return lora.apply_lora(copy.deepcopy(model), **kwargs)


def merge_on_copy(model):
    return lora.merge_lora(copy.deepcopy(model))


def device_from_env(value: str) -> str:
    """``llmfs.config.device()`` with ``LLMFS_DEVICE`` set to value (restored afterwards)."""
    before = os.environ.get("LLMFS_DEVICE")
    os.environ["LLMFS_DEVICE"] = value
    try:
        return config.device()
    finally:
        os.environ.pop("LLMFS_DEVICE") if before is None else os.environ.__setitem__("LLMFS_DEVICE", before)


def value_op(left, right, op: str):
    """One binary operation of ``autograd.Value``, with the Value on either side."""
    return {"+": lambda: left + right, "-": lambda: left - right, "*": lambda: left * right,
            "/": lambda: left / right, "**": lambda: left ** right}[op]()


BAD_OPERANDS = ["a", None, [1], 1j, True, {}, np.array([1.0, 2.0]), b"1"]

# name: (function, keyword arguments of a call that works, {argument: values that must not work})
CASES: dict[str, tuple] = {
    # ---- core
    "config.seed_everything": (
        config.seed_everything,
        dict(seed=0),
        dict(seed=NOT_INTS + NEGATIVE + [2**32, 2**64]),
    ),
    "config.setup": (
        config.setup,
        dict(seed=0, verbose=False),
        dict(seed=NOT_INTS + NEGATIVE + [2**32]),
    ),
    "config.check_device": (
        config.check_device,
        dict(name="cpu"),
        dict(name=BAD_DEVICES + NOT_NUMBERS),
    ),
    "config.device (LLMFS_DEVICE)": (
        device_from_env,
        dict(value="cpu"),
        dict(value=[d for d in BAD_DEVICES if isinstance(d, str) and d.strip()]),
    ),
    "assets.path": (
        assets.path,
        dict(name="mnist"),
        dict(name=[None, 3, "no-such-asset", "", ["mnist"], b"mnist"]),
    ),
    "data.normalize_mnist": (
        data.normalize_mnist,
        dict(images=np.zeros((2, 28, 28), np.uint8)),
        dict(images=[np.zeros((2, 2), np.float32), np.zeros(3, np.int64), None, "abc", [[1.5]], np.zeros(2, bool), [[1, 2]]]),
    ),
    "plots.show_images": (
        plots.show_images,
        dict(images=np.zeros((2, 4, 4)), labels=[1, 2], preds=[1, 0], ncols=2, ax_size=1.0, title="t"),
        dict(
            images=[
                np.zeros((2, 5)), np.zeros(3), np.zeros((1, 2, 3, 4, 5)), None, "abc", np.full((2, 4, 4), None),
                np.zeros((2, 4, 4), bool),
            ],
            labels=[[1], 5, "ab"],
            preds=[[1], 5, "ab"],
            ncols=BAD_COUNT,
            ax_size=BAD_POSITIVE + [1e9],
            title=[3, ["t"]],
        ),
    ),
    "plots.plot_curves": (
        plots.plot_curves,
        dict(history={"loss": [3.0, 2.0]}, xlabel="step", title="t", ax=None),
        dict(
            history=[None, {}, [1, 2], {"a": "abc"}, {"a": [[1, 2]]}, {"a": [None]}, {"a": [True]}],
            xlabel=[None, 3],
            title=[3, ["t"]],
            ax=["ax", 3, plt.figure],
        ),
    ),
    "plots.confusion_matrix": (
        plots.confusion_matrix,
        dict(y_true=[0, 1, 1], y_pred=[0, 1, 0], n_classes=2),
        dict(
            y_true=[[-1, 0, 0], [0.5, 1.0, 1.0], "abc", [[0, 1, 1]], None, [0, 1], [True, False, True]],
            y_pred=[[0, -2, 0], [0.0, 1.0, 0.0], [0, 1, 2, 0], {0: 1}],
            n_classes=[0, -1, 2.5, "3", True, 1],
        ),
    ),
    "plots.plot_confusion_matrix": (
        plots.plot_confusion_matrix,
        dict(y_true=[0, 1], y_pred=[1, 1], n_classes=2, ax=None, title="t"),
        dict(y_true=[[-1, 0], [0.5, 1.0]], y_pred=[[5, 1]], n_classes=[0, "2", 1], ax=["ax"], title=[3]),
    ),
    "plots.plot_graph": (
        plots.plot_graph,
        dict(root=autograd.Value(1.0) * 2, ax=None, title=None),
        dict(root=[None, 3, "x", [autograd.Value(1.0)]], ax=["ax", 3], title=[3]),
    ),
    # ---- basics: the NumPy MLP
    "mlp_numpy.init_params": (
        mlp_numpy.init_params,
        dict(sizes=[4, 3, 2], rng=np.random.default_rng(0), scheme="he"),
        dict(
            sizes=[[], [3], [3, 0], [3, -2], [3, 2.5], "34", None, [3, True], [[3, 2]], 5],
            rng=[None, 0, "rng", np.random.RandomState(0)],
            scheme=["kaiming", "", "HE", -1.0, 0, None, True, [1]] + NOT_FINITE,
            dtype=[np.int32, "int64", None, 3, bool, "complex"],
        ),
    ),
    "mlp_numpy.forward": (
        mlp_numpy.forward,
        dict(params=PARAMS, x=X),
        dict(
            params=[
                [], None, "p", [(PARAMS[0][0],)], PARAMS[::-1], [PARAMS[0]] * 2, [(PARAMS[0][0].astype(int), PARAMS[0][1])],
                [(PARAMS[0][0], PARAMS[1][1])],
            ],
            x=[X[:, :3], X[0], None, X > 0, "x", X.tolist(), X[None]],
        ),
    ),
    "mlp_numpy.softmax": (
        mlp_numpy.softmax,
        dict(z=LOGITS_NP),
        dict(z=[np.zeros(3), None, "z", np.zeros((2, 2), int), [[1.0]]]),
    ),
    "mlp_numpy.cross_entropy": (
        mlp_numpy.cross_entropy,
        dict(logits=LOGITS_NP, y=Y),
        dict(
            logits=[LOGITS_NP[0], None, LOGITS_NP.astype(int), LOGITS_NP[:0], LOGITS_NP[:3]],
            y=[Y + 10, -Y - 1, Y.astype(float), Y[:2], None, Y.tolist(), Y[:, None]],
        ),
    ),
    "mlp_numpy.backward": (
        mlp_numpy.backward,
        dict(params=PARAMS, cache=CACHE, dlogits=DLOGITS),
        dict(
            params=[None, [], PARAMS[:1]],
            cache=[[], None, CACHE[:1], [X, X], "c"],
            dlogits=[None, DLOGITS[:, :1], DLOGITS.T, DLOGITS[:2]],
        ),
    ),
    "mlp_numpy.sgd_step": (
        mlp_numpy.sgd_step,
        dict(params=PARAMS, grads=GRADS, velocity=VELOCITY, lr=0.0),
        dict(
            params=[None, PARAMS[:1]],
            grads=[GRADS[:1], None, [(1, 2)], GRADS[::-1]],
            velocity=[VELOCITY[:1], None, "v"],
            lr=[-0.1, None, "0.1", True] + NOT_FINITE,
            momentum=[-1, "0.9", None] + NOT_FINITE,
            weight_decay=[-1, float("nan"), "0"],
        ),
    ),
    "mlp_numpy.predict": (
        mlp_numpy.predict,
        dict(params=PARAMS, x=X, batch_size=2),
        dict(params=[None, "p"], x=[X[:, :3], X[:0], None], batch_size=BAD_COUNT),
    ),
    "mlp_numpy.accuracy": (
        mlp_numpy.accuracy,
        dict(params=PARAMS, x=X, y=Y),
        dict(params=[None], x=[X[:, :2], None], y=[Y[:3], Y + 5, Y.astype(float), None]),
    ),
    "mlp_numpy.evaluate": (
        mlp_numpy.evaluate,
        dict(params=PARAMS, x=X, y=Y, batch_size=2),
        dict(x=[X[:0], X[0]], y=[Y[:3], -Y - 1], batch_size=BAD_COUNT),
    ),
    "mlp_numpy.train": (
        mlp_numpy.train,
        dict(params=[(W.copy(), b.copy()) for W, b in PARAMS], x=X, y=Y, x_test=X, y_test=Y, epochs=1, batch_size=2),
        dict(
            x=[X[:, :3], X[:0], None],
            y=[Y[:2], Y + 2],
            x_test=[None, X[:, :2]],
            y_test=[None, Y[:1]],
            epochs=BAD_COUNT,
            batch_size=BAD_COUNT,
            lr=[0, -1, "x", None] + NOT_FINITE,
            momentum=[-1, "x"] + NOT_FINITE,
            weight_decay=[-1, float("nan")],
            seed=[-1, "x", 2.5],
        ),
    ),
    "mlp_numpy.preprocess": (
        mlp_numpy.preprocess,
        dict(images=np.zeros((2, 28, 28), np.uint8)),
        dict(images=[np.zeros((2, 28, 27), np.uint8), np.zeros((2, 28, 28), np.float32), None, np.zeros(784, np.uint8), "img"]),
    ),
    # ---- basics: convolution in NumPy
    "conv.out_size": (
        conv.out_size,
        dict(n=5, k=3, stride=1, pad=0),
        dict(n=[0, -1, 2.5, None, "5"], k=BAD_COUNT + [6, 99], stride=BAD_COUNT, pad=BAD_INDEX),
    ),
    "conv.im2col": (
        conv.im2col,
        dict(x=IMG, kh=3, kw=3, stride=1, pad=1),
        dict(
            x=[IMG[0], None, IMG > 0, "x", IMG.tolist(), np.zeros((2, 3, 0, 5)), IMG[None]],
            kh=BAD_COUNT + [8, 99],
            kw=BAD_COUNT + [8],
            stride=BAD_COUNT,
            pad=BAD_INDEX,
        ),
    ),
    "conv.col2im": (
        conv.col2im,
        dict(cols=COLS, x_shape=IMG.shape, kh=3, kw=3, stride=1, pad=1),
        dict(
            cols=[COLS[:-1], None, COLS.T, "c"],
            x_shape=[(2, 3, 5), None, (2, 3, 5, -5), "2355", (2, 3, 5, 5.0)],
            kh=BAD_COUNT,
            kw=[0, 99],
            stride=[0, "1"],
            pad=[-1, None],
        ),
    ),
    "conv.conv2d_forward": (
        conv.conv2d_forward,
        dict(x=IMG, w=WEIGHT, b=BIAS, stride=1, pad=1),
        dict(
            x=[IMG[:, :2], IMG[0], None, IMG > 0, "x", IMG.tolist()],
            w=[WEIGHT[:, :2], WEIGHT[0], None, np.zeros((0, 3, 3, 3)), np.zeros((4, 3, 9, 9)), WEIGHT.tolist()],
            b=[BIAS[:3], BIAS[:, None], "b", 3, BIAS.tolist()],
            stride=BAD_COUNT,
            pad=BAD_INDEX,
        ),
    ),
    "conv.conv2d_backward": (
        conv.conv2d_backward,
        dict(dout=CONV_OUT, cache=CONV_CACHE),
        dict(dout=[CONV_OUT[:, :2], None, CONV_OUT[0], "d"], cache=[None, (1, 2, 3), CONV_CACHE[:4], "c"]),
    ),
    "conv.maxpool2d_forward": (
        conv.maxpool2d_forward,
        dict(x=IMG, k=2, stride=2, pad=1),
        dict(x=[IMG[0], None, IMG > 0, IMG.tolist()], k=BAD_COUNT + [99], stride=[0, -1, 2.5, "2", True], pad=BAD_INDEX + [2]),
    ),
    "conv.maxpool2d_backward": (
        conv.maxpool2d_backward,
        dict(dout=POOL_OUT, cache=POOL_CACHE),
        dict(dout=[POOL_OUT[:, :1], None, POOL_OUT[0]], cache=[None, (1, 2), CONV_CACHE]),
    ),
    # ---- basics: scalar autograd, schedule, the PyTorch loop
    "autograd.Value": (
        autograd.Value,
        dict(data=1.0),
        dict(data=BAD_OPERANDS),
    ),
    "autograd.Value op (Value on the left)": (
        value_op,
        dict(left=autograd.Value(2.0), right=3.0, op="+"),
        dict(right=BAD_OPERANDS),
    ),
    "autograd.Value op (Value on the right)": (
        value_op,
        dict(left=3.0, right=autograd.Value(2.0), op="*"),
        dict(left=[x for x in BAD_OPERANDS if not isinstance(x, np.ndarray)]),
    ),
    "autograd.Value ** exponent": (
        value_op,
        dict(left=autograd.Value(2.0), right=0.5, op="**"),
        dict(right=BAD_OPERANDS + [autograd.Value(2.0)], left=[autograd.Value(-2.0)]),
    ),
    "autograd.topological_order": (
        autograd.topological_order,
        dict(root=autograd.Value(1.0)),
        dict(root=[None, 3, "v", [autograd.Value(1.0)]]),
    ),
    "autograd.zero_grad": (
        autograd.zero_grad,
        dict(values=[autograd.Value(1.0)]),
        dict(values=[None, 3, [autograd.Value(1.0), 2], ["a"], "ab", [[autograd.Value(1.0)]]]),
    ),
    "schedule.cosine_lr": (
        schedule.cosine_lr,
        dict(step=3, total_steps=10, lr=1.0, min_lr=0.1, warmup_steps=2),
        dict(
            step=BAD_INDEX,
            total_steps=BAD_COUNT,
            lr=[0, -1, "x", None, True] + NOT_FINITE,
            min_lr=[-1, 2.0, float("nan"), "0"],
            warmup_steps=BAD_INDEX,
            progress=[float("nan"), "x", [0.5], True],
        ),
    ),
    "torch_loop.mnist_tensors": (
        torch_loop.mnist_tensors,
        dict(n_train=10, n_test=10),
        dict(n_train=[0, -1, 2.5, "5", True, [5]], n_test=[0, "5", float("nan")]),
    ),
    "torch_loop.mnist_loaders": (
        torch_loop.mnist_loaders,
        dict(batch_size=4, n_train=8, n_test=8),
        dict(batch_size=BAD_COUNT, n_train=[0, "5"], seed=[-1, 2.5, "0", None]),
    ),
    "torch_loop.train_epoch": (
        torch_loop.train_epoch,
        dict(model=NET, loader=LOADER, optimizer=SGD, device="cpu"),
        dict(
            model=[None, "m", lambda x: x],
            loader=[None, 3, "abc", torch.zeros(3), []],
            optimizer=[None, "sgd", 0.1],
            device=BAD_DEVICES,
            scheduler=["s", 3],
        ),
    ),
    "torch_loop.predict": (
        torch_loop.predict,
        dict(model=NET, loader=LOADER, device="cpu"),
        dict(model=[None, nn.Linear], loader=[None, 5, []], device=BAD_DEVICES),
    ),
    "torch_loop.evaluate": (
        torch_loop.evaluate,
        dict(model=NET, loader=LOADER),
        dict(model=["m"], loader=[[], 2.5], device=BAD_DEVICES),
    ),
    "torch_loop.fit": (
        torch_loop.fit,
        dict(model=NET, train_loader=LOADER, test_loader=LOADER, epochs=1, optimizer=SGD, progress=False),
        dict(
            model=[None],
            train_loader=[None, []],
            test_loader=[3, []],
            epochs=BAD_COUNT,
            optimizer=[None, "adam"],
            device=BAD_DEVICES,
            scheduler=["s"],
        ),
    ),
    # ---- pretrain: attention and positions
    "attention.scaled_dot_product_attention": (
        attention.scaled_dot_product_attention,
        dict(q=Q, k=K, v=V, mask=attention.causal_mask(6)[:4]),
        dict(
            q=[Q.long(), Q[..., :5], None, Q.double(), "q", Q[0, 0], floats(2, 4, 8, device=META)],
            k=[K[..., :7], floats(3, 6, 8), None, K.half()],
            v=[V[:, :5], floats(3, 6, 5), "v"],
            mask=[
                torch.ones(4, 6), torch.ones(4, 6, dtype=torch.long), torch.ones(3, 3, dtype=torch.bool),
                torch.ones(1, 1, 1, 4, 6, dtype=torch.bool), "m", torch.ones(4, 6, dtype=torch.bool, device=META),
            ],
            dropout_p=BAD_PROBABILITY,
        ),
    ),
    "attention.causal_mask": (
        attention.causal_mask,
        dict(T=4),
        dict(T=BAD_COUNT, device=[d for d in BAD_DEVICES if d is not None]),
    ),
    "attention.padding_mask": (
        attention.padding_mask,
        dict(tokens=IDS, pad_id=0),
        dict(tokens=[IDS.float(), IDS[0], None, "t", IDS.tolist()], pad_id=[None, 2.5, "0", True]),
    ),
    "attention.MultiHeadAttention": (
        attention.MultiHeadAttention,
        dict(d_model=8, n_heads=2),
        dict(d_model=BAD_COUNT, n_heads=BAD_COUNT + [3], dropout=BAD_PROBABILITY),
    ),
    "MultiHeadAttention.forward": (
        MHA,
        dict(x=floats(2, 3, 8), memory=floats(2, 5, 8), mask=None),
        dict(
            x=[
                floats(2, 3, 7), floats(3, 8), None, floats(2, 3, 8).double(), torch.ones(2, 3, 8, dtype=torch.long),
                floats(2, 3, 8, device=META), "x",
            ],
            memory=[floats(3, 5, 8), floats(2, 5, 7), "m", floats(5, 8)],
            mask=[torch.ones(3, 5), torch.ones(2, 2, dtype=torch.bool), "m"],
        ),
    ),
    "MultiHeadAttention.from_torch": (
        attention.MultiHeadAttention.from_torch,
        dict(mha=nn.MultiheadAttention(8, 2)),
        dict(mha=[None, nn.Linear(2, 2), "m"]),
    ),
    "MultiHeadAttention.load_torch": (
        MHA.load_torch,
        dict(mha=nn.MultiheadAttention(8, 2)),
        dict(mha=[nn.MultiheadAttention(16, 2), nn.MultiheadAttention(8, 4), nn.MultiheadAttention(8, 2, bias=False), None, "m"]),
    ),
    "positions.sinusoidal_positions": (
        positions.sinusoidal_positions,
        dict(max_len=4, d_model=8),
        dict(max_len=BAD_COUNT, d_model=BAD_COUNT + [3, 5], base=BAD_POSITIVE),
    ),
    "positions.LearnedPositions": (
        positions.LearnedPositions,
        dict(max_len=4, dim=8),
        dict(max_len=BAD_COUNT, dim=BAD_COUNT),
    ),
    "LearnedPositions.forward": (
        positions.LearnedPositions(4, 8),
        dict(T=3),
        dict(T=BAD_COUNT + [5, 99]),
    ),
    "positions.rope_cache": (
        positions.rope_cache,
        dict(head_dim=4, max_len=3),
        dict(head_dim=BAD_COUNT + [3], max_len=BAD_COUNT, theta=BAD_POSITIVE, device=[d for d in BAD_DEVICES if d is not None]),
    ),
    "positions.apply_rope": (
        positions.apply_rope,
        dict(x=ROPE_X, cos=COS, sin=SIN),
        dict(
            x=[ROPE_X.long(), None, ROPE_X[..., :3], ROPE_X[0, 0, 0], floats(1, 2, 3, 4, device=META)],
            cos=[COS[:2], None, COS.long(), COS[0], torch.zeros(3, 4, device=META)],
            sin=[SIN[:, :2], "s"],
        ),
    ),
    "positions.rotate_half": (
        positions.rotate_half,
        dict(x=ROPE_X),
        dict(x=[None, torch.zeros(3), "x", torch.zeros(())]),
    ),
    # ---- pretrain: tokenizers
    "CharTokenizer.from_text": (
        bpe.CharTokenizer.from_text,
        dict(text="abc"),
        dict(text=["", None, 3, ["a"], b"abc"]),
    ),
    "CharTokenizer.encode": (
        CHAR.encode,
        dict(text="hello"),
        dict(text=[None, 3, ["h"], "xyz", b"he"]),
    ),
    "CharTokenizer.decode": (
        CHAR.decode,
        dict(ids=[1, 2]),
        dict(
            ids=[
                [99], [-1], [1.5], "ab", None, 3, [[1, 2]], torch.zeros(2, 2, dtype=torch.long), torch.tensor([0.5]),
                np.array([[1]]), [None],
            ],
        ),
    ),
    "BPETokenizer.train": (
        bpe.BPETokenizer.train,
        dict(text="aaabdaaabac", vocab_size=260),
        dict(
            text=[None, 3, b"abc", ["abc"]],
            vocab_size=[255, 0, -1, 2.5, "300", None, True],
            special_tokens=["<|x|>", (1,), ("",), ("a", "a"), None],
            pattern=[None, 3, "(", "[a-"],
        ),
    ),
    "BPETokenizer.encode": (
        BPE.encode,
        dict(text="hello"),
        dict(text=[None, 3, b"abc", ["a"]], allowed_special=["al", "<|endoftext|>", {"<|nope|>"}, [3], None, 3, "ALL"]),
    ),
    "BPETokenizer.decode": (
        BPE.decode,
        dict(ids=[104, 101]),
        dict(ids=[[10**6], [-1], [1.5], "ab", None, [[1]], torch.tensor([[1]]), [BPE.vocab_size]]),
    ),
    "BPETokenizer": (
        bpe.BPETokenizer,
        dict(merges={(97, 98): 256}),
        dict(
            merges=[None, [(1, 2)], {(1, 999): 256}],
            byte_ids=[[0] * 256, range(10), 3],
            special_tokens=[["<|x|>"], "x"],
            pattern=["(", None, 3],
        ),
    ),
    # ---- pretrain: models
    "gpt.GPTConfig": (
        gpt.GPTConfig,
        dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8),
        dict(
            vocab_size=BAD_COUNT,
            block_size=BAD_COUNT,
            n_layer=BAD_COUNT,
            n_head=BAD_COUNT + [3],
            n_embd=BAD_COUNT + [7],
            dropout=BAD_PROBABILITY,
            gelu=["relu", None, 3, "", "TANH"],
            layer_norm_eps=BAD_POSITIVE + [2.0],
            bias=["yes", 1, None],
        ),
    ),
    "gpt.GPT": (
        gpt.GPT,
        dict(cfg=GPT.config),
        dict(cfg=[None, {}, "cfg", LLAMA.config]),
    ),
    "GPT.forward": (
        GPT,
        dict(idx=IDS),
        dict(
            idx=[
                IDS.float(), IDS[0], None, IDS + 100, -IDS, torch.zeros(1, 9, dtype=torch.long),
                torch.zeros(1, 0, dtype=torch.long), "idx", IDS.tolist(), IDS.to(META), IDS.bool(),
            ],
        ),
    ),
    "GPT.from_hf": (
        gpt.GPT.from_hf,
        dict(hf_model=None),
        dict(hf_model=[None, "gpt2", GPT, 3]),
    ),
    "llama.LlamaConfig": (
        llama.LlamaConfig,
        dict(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_kv_head=1, n_embd=8, hidden_dim=16),
        dict(
            vocab_size=BAD_COUNT,
            n_head=BAD_COUNT + [3],
            n_kv_head=BAD_COUNT + [3],
            n_embd=[6, 7, 0],
            hidden_dim=BAD_COUNT,
            rope_theta=[0, -1, float("nan"), None, "1e4"],
            norm_eps=[0, -1e-5, float("nan"), None],
            tie_embeddings=["yes", None, 1],
        ),
    ),
    "llama.Llama": (
        llama.Llama,
        dict(cfg=LLAMA.config),
        dict(cfg=[None, {}, GPT.config]),
    ),
    "Llama.forward": (
        LLAMA,
        dict(idx=IDS),
        dict(idx=[IDS.float(), IDS[0], None, IDS + 100, -IDS, torch.zeros(1, 9, dtype=torch.long), IDS.to(META)]),
    ),
    "LlamaConfig.from_hf": (
        llama.LlamaConfig.from_hf,
        dict(c=None),
        dict(c=[None, GPT.config, "c", {}]),
    ),
    "Llama.from_hf": (
        llama.Llama.from_hf,
        dict(hf_model=None),
        dict(hf_model=[None, "x", 3]),
    ),
    # ---- pretrain: decoding
    "decoding.generate": (
        decoding.generate,
        dict(model=GPT, ids=IDS, max_new_tokens=2, do_sample=True, top_k=3, top_p=0.9),
        dict(
            model=[
                None, "m", 3, lambda ids: "logits", lambda ids: torch.zeros(1, 11),
                lambda ids: SimpleNamespace(logits=torch.zeros(1, 3, 11)), lambda ids: torch.zeros(2, 3, 11),
            ],
            ids=[IDS.float(), IDS[0], None, -IDS, torch.zeros(1, 0, dtype=torch.long), IDS.int(), "ids", IDS.tolist()],
            max_new_tokens=BAD_COUNT,
            do_sample=["yes", 1, None],
            temperature=BAD_POSITIVE,
            top_k=[-1, 2.5, "5", True],
            top_p=[0, -0.1, 1.5, float("nan"), "0.9", True],
            repetition_penalty=BAD_POSITIVE,
            eos_token_id=[-1, 2.5, "3", True],
            generator=["g", 3, object()],
        ),
    ),
    "decoding.greedy": (
        decoding.greedy,
        dict(model=GPT, ids=IDS, max_new_tokens=2),
        dict(ids=[IDS.float(), IDS + 100], max_new_tokens=BAD_COUNT, repetition_penalty=[0, -1.3, "1.3"], eos_token_id=[-5, "0"]),
    ),
    "decoding.sample": (
        decoding.sample,
        dict(model=GPT, ids=IDS, max_new_tokens=2),
        dict(model=[None], temperature=[0, -0.7, float("inf")], top_k=[-3, 0.5], top_p=[0, 2], generator=[0]),
    ),
    "decoding.beam_search": (
        decoding.beam_search,
        dict(model=GPT, ids=IDS, max_new_tokens=2, num_beams=2),
        dict(
            model=[None, "m"],
            ids=[torch.tensor([[1, 2], [3, 4]]), IDS.float(), IDS[0], None, -IDS],
            max_new_tokens=BAD_COUNT,
            num_beams=BAD_COUNT,
            length_penalty=NOT_NUMBERS + NOT_FINITE + [True],
            eos_token_id=[-1, "3"],
            early_stopping=["always", 1, None, 0.5, "True"],
        ),
    ),
    "decoding.top_k_filter": (
        decoding.top_k_filter,
        dict(logits=LOGITS, k=3),
        dict(logits=[LOGITS.long(), LOGITS[0], None, torch.zeros(2, 0), "l"], k=BAD_COUNT),
    ),
    "decoding.top_p_filter": (
        decoding.top_p_filter,
        dict(logits=LOGITS, p=0.5),
        dict(logits=[LOGITS.long(), LOGITS[0], [[1.0]]], p=[0, -0.5, 1.5, None, "0.9", True] + NOT_FINITE),
    ),
    "decoding.apply_repetition_penalty": (
        decoding.apply_repetition_penalty,
        dict(logits=LOGITS, ids=IDS, penalty=1.3),
        dict(
            logits=[LOGITS.repeat(2, 1), LOGITS.long(), LOGITS.to(META), LOGITS[:, :2]],
            ids=[IDS + 100, -IDS, IDS.float(), IDS[0]],
            penalty=BAD_POSITIVE,
        ),
    ),
    "decoding.process_logits": (
        decoding.process_logits,
        dict(logits=LOGITS, ids=IDS, temperature=0.8, top_k=5, top_p=0.9, repetition_penalty=1.2),
        dict(
            logits=[LOGITS[0], None],
            ids=[IDS + 50, None],
            temperature=BAD_POSITIVE,
            top_k=[-1, 2.5, "5"],
            top_p=[0, 1.01, "1"],
            repetition_penalty=[0, -2, None],
        ),
    ),
    "decoding.next_token_logits": (
        decoding.next_token_logits,
        dict(model=GPT, ids=IDS),
        dict(model=[None, 5, lambda ids: ids], ids=[IDS.float(), IDS[0], None]),
    ),
    # ---- pretrain: checkpoints and data
    "checkpoint.save_checkpoint": (
        checkpoint.save_checkpoint,
        dict(path=TMP / "saved.safetensors", model=GPT),
        dict(
            path=[None, 3, ["p"]],
            model=[None, "m", {}],
            optimizer=["adam", 3],
            step=[-1, 2.5, "5", None, True],
            generators=[{"data": 3}, [torch.Generator()], {1: torch.Generator()}],
            extra=[[1, 2], "x", {"a": object()}, {"a": {1, 2}}],
        ),
    ),
    "checkpoint.load_checkpoint": (
        checkpoint.load_checkpoint,
        dict(path=CKPT, model=GPT, restore_rng=False),
        dict(
            path=[None, 3, CORRUPT, FOREIGN, LLAMA_CKPT, ["p"]],
            model=[None, "m", LLAMA],
            optimizer=["adam", torch.optim.SGD(GPT.parameters(), lr=0.1)],
            generators=[{"nope": torch.Generator()}, {"x": 3}, ["g"]],
        ),
    ),
    "lm_data.prepare_data": (
        lm_data.prepare_data,
        dict(text="hello hello", out_dir=TMP / "prepared", encode=CHAR.encode, vocab_size=50),
        dict(
            text=["", None, 3, b"abc"],
            out_dir=[None, 3],
            vocab_size=[0, -1, 2**16 + 1, 2.5, "65", True],
            encode=[None, lambda s: [-1], lambda s: ["a"], lambda s: [10**6]],
            val_fraction=[0, 1, -0.5, float("nan"), "0.1", None],
            meta=[[1], "m"],
        ),
    ),
    "lm_data.get_batch": (
        lm_data.get_batch,
        dict(data=TOKENS, batch_size=2, block_size=4, generator=torch.Generator()),
        dict(
            data=[None, [1, 2, 3], np.zeros((2, 50)), TOKENS[:4]],
            batch_size=BAD_COUNT,
            block_size=BAD_COUNT + [10**6],
            generator=[None, 3, "g"],
            device=BAD_DEVICES,
        ),
    ),
    "lm_data.load_tokens": (
        lm_data.load_tokens,
        dict(data_dir=DATA_DIR, split="train"),
        dict(data_dir=[None, 3, b"x"], split=["test", "", None, 3, "TRAIN"]),
    ),
    "lm_data.read_meta": (
        lm_data.read_meta,
        dict(data_dir=DATA_DIR),
        dict(data_dir=[None, 3, b"x", ["kjv-char"]]),
    ),
    "lm_data.kjv_folder": (
        lm_data.kjv_folder,
        dict(tokenizer="char", root=TMP),
        dict(tokenizer=["bpe", "", None, 3, "CHAR"]),
    ),
    # ---- pretrain: the trainer
    "train.TrainConfig": (
        train.TrainConfig,
        dict(),
        dict(
            n_layer=BAD_COUNT,
            lr=[0, -1, "x", None] + NOT_FINITE,
            dropout=[1.0, -0.1, "0"],
            gelu=["relu", None],
            dtype=["fp8", "float64", None],
            device=["gpu", "cuda:x", 3],
            batch_size=BAD_COUNT,
            resume=["yes", 1],
            min_lr=[-1, 10.0],
            beta1=[1.0, -0.5],
        ),
    ),
    "train.get_lr": (
        train.get_lr,
        dict(it=0, cfg=CFG),
        dict(it=BAD_INDEX, cfg=[None, {}, "cfg"], progress=[float("nan"), "x", True]),
    ),
    "train.lm_loss": (
        train.lm_loss,
        dict(logits=floats(2, 3, 11), targets=torch.zeros(2, 3, dtype=torch.long)),
        dict(
            logits=[floats(6, 11), floats(2, 3, 11).long(), None, floats(2, 4, 11)],
            targets=[
                torch.zeros(2, 3), torch.zeros(2, 1, dtype=torch.long), torch.full((2, 3), 11), torch.full((2, 3), -2), None,
            ],
        ),
    ),
    "train.estimate_loss": (
        train.estimate_loss,
        dict(model=GPT, data=TOKENS, batch_size=2, block_size=4, iters=1),
        dict(
            model=[None, "m"],
            data=[None, TOKENS[:3]],
            batch_size=BAD_COUNT,
            block_size=[0, 9],
            iters=BAD_COUNT,
            device=BAD_DEVICES,
        ),
    ),
    "train.autocast_context": (
        train.autocast_context,
        dict(device_type="cpu", dtype="bfloat16"),
        dict(device_type=["gpu", None, 3], dtype=["fp8", None, 16, "float64"]),
    ),
    "train.configure_optimizer": (
        train.configure_optimizer,
        dict(model=GPT, weight_decay=0.1, lr=1e-3, betas=(0.9, 0.99)),
        dict(
            model=[None, "m"],
            weight_decay=[-1.0],
            lr=[-1.0, float("nan")],
            betas=[(1.5, 0.9), (0.9,), "x", None, (0.9, "0.9")],
        ),
    ),
    "train.train": (
        train.train,
        dict(cfg=CFG, quiet=True),
        dict(cfg=[None, {}, "cfg"], model=["m", 3]),
    ),
    # ---- pretrain: the original Transformer
    "seq2seq.Transformer": (
        seq2seq.Transformer,
        dict(src_vocab=7, tgt_vocab=7, d_model=8, n_heads=2, n_layers=1, d_ff=16),
        dict(
            src_vocab=BAD_COUNT,
            tgt_vocab=BAD_COUNT,
            d_model=[7, 0, "8"],
            n_heads=BAD_COUNT + [3],
            n_layers=BAD_COUNT,
            d_ff=BAD_COUNT,
            dropout=BAD_PROBABILITY,
            max_len=BAD_COUNT,
            pad_id=[-1, 99, 7, 2.5, "0", True],
        ),
    ),
    "seq2seq.Transformer.forward": (
        S2S,
        dict(src=SRC, tgt=IDS),
        dict(
            src=[SRC.float(), SRC[0], -SRC, SRC + 100, torch.zeros(1, 11, dtype=torch.long), None],
            tgt=[IDS.float(), IDS + 7, torch.zeros(2, 3, dtype=torch.long), "t"],
        ),
    ),
    "seq2seq.greedy_decode": (
        seq2seq.greedy_decode,
        dict(model=S2S, src=SRC, bos_token_id=1, eos_token_id=2, max_new_tokens=3),
        dict(
            model=[None, "m", nn.Linear(2, 2)],
            src=[SRC.float(), SRC[0], None, SRC + 100],
            bos_token_id=BAD_INDEX + [99],
            eos_token_id=BAD_INDEX,
            max_new_tokens=BAD_COUNT,
        ),
    ),
    "seq2seq.beam_search": (
        seq2seq.beam_search,
        dict(model=S2S, src=SRC, bos_token_id=1, eos_token_id=2, max_new_tokens=3, num_beams=2),
        dict(
            model=[None],
            src=[SRC.float(), None],
            bos_token_id=[-1, 99],
            eos_token_id=[None, "2"],
            max_new_tokens=BAD_COUNT,
            num_beams=BAD_COUNT,
            length_penalty=NOT_NUMBERS + NOT_FINITE,
        ),
    ),
    # ---- pretrain: mixture of experts
    "moe.route": (
        moe.route,
        dict(router_logits=ROUTER_LOGITS, top_k=2),
        dict(router_logits=NOT_TENSORS + [ROUTER_LOGITS[0], IDS, floats(0, 4)], top_k=BAD_COUNT + [5]),
    ),
    "moe.load_balancing_loss": (
        moe.load_balancing_loss,
        dict(router_logits=ROUTER_LOGITS, top_k=2),
        dict(router_logits=NOT_TENSORS + [[], (), ROUTER_LOGITS[0]], top_k=BAD_COUNT + [5]),
    ),
    "moe.expert_capacity": (
        moe.expert_capacity,
        dict(n_tokens=12, n_experts=4, top_k=2, capacity_factor=1.25),
        dict(n_tokens=BAD_COUNT, n_experts=BAD_COUNT, top_k=BAD_COUNT + [5], capacity_factor=BAD_POSITIVE),
    ),
    "moe.within_capacity": (
        moe.within_capacity,
        dict(indices=torch.tensor([[0, 1], [1, 2]]), n_experts=4, capacity=1),
        dict(indices=NOT_TENSORS + [torch.tensor([0, 1]), torch.tensor([[0.0, 1.0]])], n_experts=BAD_COUNT,
             capacity=BAD_COUNT),
    ),
    "moe.MoE": (
        moe.MoE,
        dict(dim=8, hidden_dim=16, n_experts=4, top_k=2, capacity_factor=1.0, aux_loss_coef=0.01),
        dict(dim=BAD_COUNT, hidden_dim=BAD_COUNT, n_experts=BAD_COUNT, top_k=BAD_COUNT + [5],
             capacity_factor=[0, -1.0, float("nan"), "1", True], aux_loss_coef=[-0.1, float("inf"), None, "0.01", True]),
    ),
    "MoE.forward": (
        MOE,
        dict(x=floats(2, 3, 8)),
        dict(x=NOT_TENSORS + [floats(2, 3, 7), floats(3, 8), floats(2, 0, 8)]),
    ),
    "MoE.from_hf": (
        moe.MoE.from_hf,
        dict(block=None),
        dict(block=[None, "block", nn.Linear(2, 2), MOE]),
    ),
    "seq2seq.load_torch_layer": (
        seq2seq.load_torch_layer,
        dict(ours=seq2seq.EncoderLayer(8, 2, 16), theirs=nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)),
        dict(
            ours=[None, nn.Linear(2, 2), seq2seq.DecoderLayer(8, 2, 16)],
            theirs=[None, nn.TransformerDecoderLayer(8, 2, 16), "t"],
        ),
    ),
    # ---- finetune: LoRA, NF4 (QLoRA), DPO
    "lora.LoRALinear": (
        lora.LoRALinear,
        dict(base=nn.Linear(4, 3), r=2, alpha=4.0, dropout=0.1),
        dict(base=[None, "lin", nn.Conv1d(2, 2, 1), nn.ReLU(), nn.Linear], r=BAD_COUNT, alpha=BAD_POSITIVE,
             dropout=BAD_PROBABILITY),
    ),
    "LoRALinear.forward": (
        LORA_LAYER,
        dict(x=floats(2, 4)),
        dict(x=NOT_TENSORS + [floats(2, 3), torch.zeros(2, 4, dtype=torch.long), floats(2, 4, device=META), torch.tensor(1.0)]),
    ),
    "lora.apply_lora": (
        lora_on_copy,
        dict(model=LORA_NET, r=2, alpha=4.0, target_modules=["0", "2"], dropout=0.0),
        dict(
            model=[None, "m", 3, nn.Linear(2, 2), LORA_MODEL],
            r=BAD_COUNT,
            alpha=BAD_POSITIVE,
            target_modules=[[], ["nope"], ["1"], [3], None, "", [""], 5, {"0": 1}],
            dropout=BAD_PROBABILITY,
        ),
    ),
    "lora.merge_lora": (
        merge_on_copy,
        dict(model=LORA_MODEL),
        dict(model=[None, "m", nn.Linear(2, 2), LORA_NET]),
    ),
    "lora.count_parameters": (
        lora.count_parameters,
        dict(model=LORA_MODEL),
        dict(model=[None, "m", 3, nn.Linear]),
    ),
    "lora.lora_state_dict": (
        lora.lora_state_dict,
        dict(model=LORA_MODEL),
        dict(model=[None, "m", nn.Linear(2, 2)]),
    ),
    "lora.save_lora": (
        lora.save_lora,
        dict(path=TMP / "adapter2.safetensors", model=LORA_MODEL),
        dict(path=[None, 3, ["a"]], model=[None, "m", nn.Linear(2, 2)]),
    ),
    "lora.load_lora": (
        lora.load_lora,
        dict(path=LORA_FILE, model=copy.deepcopy(LORA_MODEL)),
        dict(path=[None, 3, CORRUPT, FOREIGN, CKPT, ["p"]], model=[None, "m", nn.Linear(2, 2), LORA_OTHER_ALPHA, LORA_NET]),
    ),
    "qlora.nf4_levels": (
        qlora.nf4_levels,
        dict(offset=0.9677083),
        dict(offset=NOT_NUMBERS + NOT_FINITE + [0.5, 1.0, 0, -1, True]),
    ),
    "qlora.quantize_nf4": (
        qlora.quantize_nf4,
        dict(w=NF4_W, block_size=4, double_quant=True),
        dict(
            w=NOT_TENSORS + [torch.zeros(3, dtype=torch.long), floats(0), torch.tensor([1.0, float("nan")]),
                             torch.tensor([float("inf")]), NF4_W.double(), floats(4, 8, device=META)],
            block_size=BAD_COUNT,
            double_quant=[None, 1, "yes", 0.0],
        ),
    ),
    "qlora.dequantize_nf4": (
        qlora.dequantize_nf4,
        dict(q=NF4_Q, dtype=torch.bfloat16),
        dict(
            q=[None, NF4_W, "q", dataclasses.replace(NF4_Q, packed=NF4_Q.packed[:-1]),
               dataclasses.replace(NF4_Q, absmax=NF4_Q.absmax.float()), dataclasses.replace(NF4_Q, block_size=0),
               dataclasses.replace(NF4_Q, dtype=torch.int64), dataclasses.replace(NF4_Q, packed=NF4_Q.packed.long())],
            dtype=[torch.int64, "float32", 3, torch.float64],
        ),
    ),
    "qlora.dequantize_absmax": (
        qlora.dequantize_absmax,
        dict(q=NF4_Q),
        dict(q=[None, NF4_W, dataclasses.replace(NF4_Q, absmax_scale=NF4_Q.absmax_scale[:0])]),
    ),
    "qlora.NF4Linear": (
        qlora.NF4Linear,
        dict(base=nn.Linear(8, 4), block_size=4, double_quant=False),
        dict(base=[None, "lin", nn.Conv1d(2, 2, 1), nn.Linear, nn.Linear(8, 4, device=META)], block_size=BAD_COUNT,
             double_quant=["yes", None, 1]),
    ),
    "NF4Linear.forward": (
        NF4_LAYER,
        dict(x=floats(2, 8)),
        dict(x=NOT_TENSORS + [floats(2, 7), torch.zeros(2, 8, dtype=torch.long), floats(2, 8, device=META),
                              floats(2, 8).double(), torch.tensor(1.0)]),
    ),
    "classify.last_token_index": (
        classify.last_token_index,
        dict(attention_mask=MASK),
        dict(attention_mask=BAD_MASKS),
    ),
    "classify.pool_last": (
        classify.pool_last,
        dict(hidden=floats(2, 4, 3), attention_mask=MASK),
        dict(hidden=NOT_TENSORS + [floats(2, 4), floats(3, 4, 3), floats(2, 5, 3), torch.zeros(2, 4, 3, dtype=torch.long)],
             attention_mask=BAD_MASKS),
    ),
    "classify.position_ids": (
        classify.position_ids,
        dict(attention_mask=MASK),
        dict(attention_mask=BAD_MASKS),
    ),
    "classify.pad_batch": (
        classify.pad_batch,
        dict(sequences=[[1, 2], [3]], pad_id=0, side="left"),
        dict(sequences=[None, [], [[]], [[1, -2]], [["a"]], "12", [[1.5]], 3], pad_id=BAD_INDEX, side=[None, "up", 1, "LEFT"]),
    ),
    "classify.SequenceClassifier": (
        classify.SequenceClassifier,
        dict(body=TinyBody(), n_classes=3),
        dict(body=[None, "m", nn.Linear(2, 2), TinyBody], n_classes=NOT_INTS + NEGATIVE + [0, 1]),
    ),
    "SequenceClassifier.forward": (
        CLASSIFIER,
        dict(input_ids=CLS_BATCH["input_ids"], attention_mask=MASK),
        dict(input_ids=NOT_TENSORS + [CLS_BATCH["input_ids"].float(), CLS_BATCH["input_ids"][0]],
             attention_mask=BAD_MASKS + [MASK[:, :3]]),
    ),
    "classify.classification_loss": (
        classify.classification_loss,
        dict(model=CLASSIFIER, batch=CLS_BATCH),
        dict(model=[None, "m", 3], batch=[None, {}, "b", CLS_BATCH | {"labels": torch.tensor([0.0, 1.0])},
                                         CLS_BATCH | {"labels": torch.tensor([0, 1, 1])},
                                         {k: v for k, v in CLS_BATCH.items() if k != "labels"}]),
    ),
    "classify.predict": (
        classify.predict,
        dict(model=CLASSIFIER, batches=[CLS_BATCH]),
        dict(model=[None, "m"], batches=[None, 3, [], [None], ["b"], [{"input_ids": CLS_BATCH["input_ids"]}]]),
    ),
    "federated.split_iid": (
        federated.split_iid,
        dict(examples=TASKS, n_clients=3, seed=0),
        dict(examples=[None, [], "abc", {"a": 1}, 3], n_clients=BAD_COUNT + [25, 10**6]),
    ),
    "federated.split_by_family": (
        federated.split_by_family,
        dict(examples=TASKS, n_clients=4, families_per_client=3, seed=0),
        dict(examples=[None, [], "abc", [{"x": 1}] * 4, [1, 2, 3, 4]], n_clients=BAD_COUNT + [25],
             families_per_client=BAD_COUNT + [13, 2]),
    ),
    "federated.fedavg": (
        federated.fedavg,
        dict(states=STATES, weights=[1, 3]),
        dict(states=[None, [], STATES[0], [{}], [STATES[0], {"a": floats(2, 3)}], [STATES[0], {"a": floats(3), "b": floats(4)}],
                     [{"a": torch.zeros(2, dtype=torch.long)}], ["s"]],
             weights=[[1], [0, 0], [-1, 2], [float("nan"), 1], [float("inf"), 1], "ab", [True, 1], [None, 1], 3]),
    ),
    "federated.message_bytes": (
        federated.message_bytes,
        dict(state=STATES[0]),
        dict(state=[None, [1, 2], "s", {"a": [1.0]}, 3]),
    ),
    "dpo.dpo_loss": (
        dpo.dpo_loss,
        dict(policy_chosen_logps=floats(3), policy_rejected_logps=floats(3), ref_chosen_logps=floats(3),
             ref_rejected_logps=floats(3), beta=0.1),
        {
            name: NOT_TENSORS + [floats(4), floats(3, 1), torch.zeros(3, dtype=torch.long), floats(3, device=META),
                                 torch.full((3,), float("nan")), torch.full((3,), -float("inf")), floats(0)]
            for name in ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")
        } | dict(beta=BAD_POSITIVE),
    ),
    "dpo.sequence_logps": (
        dpo.sequence_logps,
        dict(logits=floats(2, 4, 5), labels=LABELS, ignore_index=-100),
        dict(
            logits=NOT_TENSORS + [floats(2, 4), floats(2, 1, 5), torch.zeros(2, 4, 5, dtype=torch.long),
                                  floats(2, 4, 5, device=META), floats(2, 4, 0)],
            labels=[None, LABELS.float(), LABELS[:, :3], LABELS + 10, LABELS - 200, LABELS.tolist(), LABELS[0]],
            ignore_index=[None, "x", 2.5, True, [-100]],
        ),
    ),
    # ---- rag: BM25, vector indexes, the sentence encoder
    "chunk.recursive_split": (
        chunk.recursive_split,
        dict(text="a b\n\nc d", chunk_size=4, chunk_overlap=1),
        dict(text=[None, 3, b"ab", ["a"]], chunk_size=BAD_COUNT, chunk_overlap=BAD_INDEX + [4, 9],
             separators=[None, [], "ab", [1], [None]]),
    ),
    "chunk.fixed_windows": (
        chunk.fixed_windows,
        dict(text="abcdef", size=4, overlap=1),
        dict(text=[None, 3, b"ab"], size=BAD_COUNT, overlap=BAD_INDEX + [4]),
    ),
    "chunk.sentence_windows": (
        chunk.sentence_windows,
        dict(text="A b. C d.", n=2, overlap=1),
        dict(text=[None, 3, b"ab"], n=BAD_COUNT, overlap=BAD_INDEX + [2]),
    ),
    "chunk.python_chunks": (
        chunk.python_chunks,
        dict(source="def f():\n    pass\n", path="m.py", module="m", max_lines=10),
        dict(source=[None, 3, b"x = 1", "def f(:", "x = '\0'"], max_lines=BAD_COUNT),
    ),
    "metrics.recall_at_k": (
        metrics.recall_at_k,
        dict(ranked=[["a", "b"]], relevant=[{"b"}], k=1),
        dict(ranked=[None, "ab", [["a"], ["b"]], [3]], relevant=[None, "b", [set()], [{"b"}, {"a"}]], k=BAD_COUNT),
    ),
    "metrics.f1": (
        metrics.f1, dict(prediction="a cat", answers=["the cat"]), dict(prediction=[None, 3], answers=[[], None, [3]]),
    ),
    "hybrid.rrf": (
        hybrid.rrf,
        dict(rankings=[[0, 1, 2], [2, 0]], n_docs=3, k=60),
        dict(rankings=[None, [], "ab", [[0, 0]], [[0, 3]], [[-1]], [[0.5]], [[[0]]]],
             n_docs=[v for v in BAD_COUNT if v is not None] + [2],
             k=[None, -1, 2.5, "a", True]),
    ),
    "hybrid.mmr": (
        hybrid.mmr,
        dict(query=UNIT_VECS[0], vectors=UNIT_VECS, candidates=[1, 2, 3], k=2, lambda_=0.5),
        dict(query=[None, "q", UNIT_VECS[0, :3], UNIT_VECS[:2]], vectors=[None, "v", UNIT_VECS[0], UNIT_VECS[:, :3]],
             candidates=[None, [], [12], [-1], [1, 1], [0.5], "a"], k=BAD_COUNT, lambda_=NOT_NUMBERS + [-0.1, 1.5, True]),
    ),
    "rerank.question_likelihood": (
        rerank.question_likelihood,
        dict(model=TINY_LM, tokenizer=SMOL_TOKENIZER, question="Who?", passages=["A b.", "C d e."], batch_size=1),
        dict(model=[None, "m", 3], question=[None, "", "  ", 3, ["q"]], passages=[None, "p", [1], [None]],
             max_passage_tokens=BAD_COUNT, batch_size=BAD_COUNT),
    ),
    "store.disk_size": (store.disk_size, dict(path=TMP), dict(path=[None, 3, TMP / "absent", b"x"])),
    "store.free_port": (store.free_port, dict(host="127.0.0.1"), dict(host=[None, "", 3, "256.1.1.1"])),
    "store.heartbeat": (store.heartbeat, dict(url="http://127.0.0.1:9", timeout=0.2), dict(url=[None, "", 3, "127.0.0.1:80"])),
    "codeqa.code_tokens": (codeqa.code_tokens, dict(text="JSONEncoder.iterencode"), dict(text=[None, 3, b"x", ["a"]])),
    "bm25.tokenize": (
        bm25.tokenize,
        dict(text="Hello, world"),
        dict(text=[None, 3, ["a"], b"a"]),
    ),
    "bm25.BM25": (
        bm25.BM25,
        dict(corpus=[["a", "b"], ["c"]], k1=1.5, b=0.75, epsilon=0.25),
        dict(
            corpus=[None, [], "ab", [[]], [[], []], [["a", 1]], ["ab"], 3, [None]],
            k1=NOT_NUMBERS + NOT_FINITE + [-1, True],
            b=NOT_NUMBERS + NOT_FINITE + [-0.1, 1.5, True],
            epsilon=NOT_NUMBERS + NOT_FINITE + [-1],
        ),
    ),
    "BM25.get_scores": (
        BM25.get_scores,
        dict(query_tokens=["a", "z"]),
        dict(query_tokens=[None, "a b", [1], 3, [["a"]], [None]]),
    ),
    "index.FlatIndex": (index.FlatIndex, dict(dim=4), dict(dim=BAD_COUNT)),
    "index.IVFIndex": (index.IVFIndex, dict(dim=4, nlist=2), dict(dim=BAD_COUNT, nlist=BAD_COUNT)),
    "index.HNSWIndex": (
        index.HNSWIndex,
        dict(dim=4, M=4, ef_construction=8),
        dict(dim=BAD_COUNT, M=BAD_COUNT + [1], ef_construction=BAD_COUNT),
    ),
    "FlatIndex.add": (index.FlatIndex(4).add, dict(X=VECS), dict(X=BAD_VECTORS)),
    "IVFIndex.add": (IVF.add, dict(X=VECS[:2]), dict(X=BAD_VECTORS)),
    "HNSWIndex.add": (index.HNSWIndex(4, M=4, ef_construction=4).add, dict(X=VECS[:3]), dict(X=BAD_VECTORS)),
    "IVFIndex.train": (
        index.IVFIndex(4, 3).train,
        dict(X=VECS, n_iter=2),
        dict(X=BAD_VECTORS + [VECS[:2]], n_iter=BAD_INDEX),
    ),
    "index.kmeans": (
        index.kmeans,
        dict(X=VECS, k=3, n_iter=2),
        dict(X=[None, "v", VECS[0], VECS[:0], NAN_VECS, VECS[:2]], k=BAD_COUNT + [13], n_iter=BAD_INDEX),
    ),
    "FlatIndex.search": (FLAT.search, dict(Q=VECS[:2], k=3), dict(Q=BAD_VECTORS, k=BAD_COUNT)),
    "IVFIndex.search": (
        IVF.search,
        dict(Q=VECS[:2], k=3, nprobe=1),
        dict(Q=BAD_VECTORS, k=BAD_COUNT, nprobe=BAD_COUNT + [4]),
    ),
    "HNSWIndex.search": (HNSW.search, dict(Q=VECS[:2], k=3, ef=4), dict(Q=BAD_VECTORS, k=BAD_COUNT, ef=BAD_COUNT)),
    "embed.BertConfig": (
        embed.BertConfig,
        dict(dim=8, n_head=2),
        dict(dim=BAD_COUNT + [9], n_head=BAD_COUNT, vocab_size=BAD_COUNT, n_layer=BAD_COUNT),
    ),
    "MiniLM.forward": (
        TINY_BERT,
        dict(input_ids=BERT_IDS, attention_mask=BERT_MASK),
        dict(
            input_ids=NOT_TENSORS + [BERT_IDS.float(), BERT_IDS[0], BERT_IDS[:, :0], BERT_IDS + 40000, -BERT_IDS,
                                     torch.zeros(1, 600, dtype=torch.long)],
            attention_mask=NOT_TENSORS + [BERT_MASK[:, :3], BERT_MASK.float(), BERT_MASK * 2, BERT_MASK[0]],
        ),
    ),
    "MiniLM.encode": (
        TINY_BERT.encode,
        dict(texts=["a sentence", "another"], batch_size=1),
        dict(texts=[None, "text", [], [1], ["a", None], 3, [["a"]]], batch_size=BAD_COUNT),
    ),
}
# their working call needs a transformers model
NOT_CALLED_VALID = {"GPT.from_hf", "LlamaConfig.from_hf", "Llama.from_hf", "MoE.from_hf"}
CALLS: Counter = Counter()  # bad calls made by the fuzz, per function
LISTED_CALLS: Counter = Counter()  # bad calls made by test_every_listed_bad_value_raises, per function


# ------------------------------------------------------------------------------------------------ the fuzz


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=EXAMPLES_PER_FUNCTION, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_arguments_raise_value_or_type_error(name, data):
    fn, kwargs, bad = CASES[name]
    arg = data.draw(st.sampled_from(sorted(bad)), label="argument")
    value = data.draw(st.sampled_from(bad[arg]), label="bad value")
    if isinstance(value, st.SearchStrategy):
        value = data.draw(value, label="drawn value")
    CALLS[name] += 1
    with pytest.raises((TypeError, ValueError)) as info:
        fn(**{**kwargs, arg: value})
    assert str(info.value), f"{name}({arg}=...) raised {type(info.value).__name__} without a message"


@pytest.mark.parametrize("name", list(CASES))
def test_every_listed_bad_value_raises(name):
    """Deterministic complement of the fuzz: each listed bad value of each argument, once."""
    fn, kwargs, bad = CASES[name]
    for arg, values in bad.items():
        for value in values:
            if isinstance(value, st.SearchStrategy):
                continue
            LISTED_CALLS[name] += 1
            with pytest.raises((TypeError, ValueError)):
                fn(**{**kwargs, arg: value})


@pytest.mark.parametrize("name", [n for n in CASES if n not in NOT_CALLED_VALID])
def test_valid_calls_work(name):
    """The working call of each case does work: a bad call fails because of its one bad argument."""
    fn, kwargs, _ = CASES[name]
    fn(**kwargs)


def test_the_fuzz_made_enough_calls():
    if set(CALLS) != set(CASES):
        pytest.skip("counts only when every function's fuzz test ran (the whole file)")
    total = sum(CALLS.values())
    print(f"\nfuzz: {total} bad calls over {len(CASES)} functions (at most {EXAMPLES_PER_FUNCTION} each); "
          f"every listed bad value once: {sum(LISTED_CALLS.values())} more")
    assert total >= MIN_CALLS, f"only {total} bad calls were made: raise EXAMPLES_PER_FUNCTION"


# ------------------------------------------------------------------------------------------------ the messages


@pytest.mark.parametrize("call,error,message", [
    (lambda: decoding.generate(GPT, IDS.float(), 2), ValueError,
     r"ids must be a \(batch, time\) int64 tensor.*got shape \(1, 3\) float32"),
    (lambda: decoding.generate(GPT, IDS, 0), ValueError, r"max_new_tokens must be an integer >= 1, got 0"),
    (lambda: decoding.sample(GPT, IDS, 2, temperature=0), ValueError, r"temperature must be a number > 0, got 0"),
    (lambda: decoding.sample(GPT, IDS, 2, top_p=1.5), ValueError, r"top_p must be None or a number in \(0, 1\], got 1.5"),
    (lambda: decoding.top_k_filter(LOGITS, "5"), TypeError, r"k must be an integer >= 1, got str '5'"),
    (lambda: decoding.greedy(lambda ids: SimpleNamespace(logits=0), IDS, 2), TypeError, r"hf_model\(ids\)\.logits"),
    (lambda: decoding.beam_search(GPT, IDS, 2, early_stopping="always"), ValueError, r"True, False or 'never'"),
    (lambda: GPT(IDS + 20), ValueError, r"token ids must be in 0..10, got 21..23"),
    (lambda: GPT(IDS.float()), ValueError, r"int64 tensor of token ids, got shape \(1, 3\) float32"),
    (lambda: mlp_numpy.init_params([784], RNG), ValueError, r"sizes must be a list of at least 2 positive ints"),
    (lambda: mlp_numpy.init_params([4, 2], RNG, scheme="kaiming"), ValueError, r"'he', 'xavier' or a float > 0, got 'kaiming'"),
    (lambda: mlp_numpy.forward(PARAMS, X[:, :3]), ValueError,
     r"x must be a \(batch, 4\) array of numbers, got float64 array of shape \(5, 3\)"),
    (lambda: conv.conv2d_forward(IMG[:, :2], WEIGHT, None), ValueError,
     r"same C, got x float64 \(2, 2, 5, 5\) and w float64 \(4, 3, 3, 3\)"),
    (lambda: conv.im2col(IMG, 9, 9), ValueError, r"the 9x9 kernel is bigger than the padded x: 5x5 with pad=0"),
    (lambda: conv.conv2d_forward(IMG, WEIGHT, BIAS, stride=0), ValueError, r"stride must be an integer >= 1, got 0"),
    (lambda: autograd.Value(2.0) + "a", TypeError, r"a Value holds one real number \(int or float\), got str 'a'"),
    (lambda: autograd.Value(2.0) ** autograd.Value(2.0), TypeError, r"only constant exponents"),
    (lambda: attention.scaled_dot_product_attention(Q, K[..., :7], V), ValueError, r"q, k, v must be.*k \(2, 6, 7\) float32"),
    (lambda: attention.scaled_dot_product_attention(Q, K, V, mask=torch.ones(4, 6)), ValueError, r"mask must be a bool tensor"),
    (lambda: attention.MultiHeadAttention(8, 0), ValueError, r"n_heads must be an integer >= 1, got 0"),
    (lambda: BPE.decode([10**6]), ValueError, r"token ids not in the vocabulary .*: \[1000000\]"),
    (lambda: BPE.encode(b"abc"), TypeError, r"text must be a str, got bytes"),
    (lambda: BPE.encode("a", allowed_special={"<|im_start|>"}), ValueError, r"does not have: \['<\|im_start\|>'\]"),
    (lambda: bpe.BPETokenizer.train("abc", vocab_size=100), ValueError, r"vocab_size must be at least 257 .*got 100"),
    (lambda: checkpoint.load_checkpoint(CORRUPT, GPT), ValueError, r"not a readable safetensors file"),
    (lambda: checkpoint.load_checkpoint(LLAMA_CKPT, GPT, restore_rng=False), ValueError, r"does not fit this model"),
    (lambda: checkpoint.load_checkpoint(TMP / "missing.safetensors", GPT), FileNotFoundError, r"no checkpoint file at"),
    (lambda: device_from_env("gpu"), ValueError, r"LLMFS_DEVICE must be 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu'"),
    (lambda: device_from_env("cuda:99"), ValueError, r"LLMFS_DEVICE='cuda:99', but this machine has \d+ CUDA device"),
    (lambda: plots.confusion_matrix([0, 3], [0, 1], n_classes=2), ValueError, r"a label is 3, out of range for n_classes=2"),
    (lambda: torch_loop.fit(NET, LOADER, LOADER, 1, SGD, device="gpu"), ValueError,
     r"device must be 'cpu', 'cuda', 'cuda:N' or 'mps'"),
])
def test_messages_say_what_was_expected_and_what_came(call, error, message):
    with pytest.raises(error, match=message):
        call()
