"""Draw the course roadmap (assets/roadmap.png): the six series and what each one stands on.

    .venv/bin/python assets/roadmap.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a script, not a notebook
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

SERIES = {  # name: (x, y, colour, what it teaches)
    "01CB  Basics": (1.0, 3.0, "#4C72B0", "neurons, backprop, MLP, autograd,\nPyTorch, CNN, RNN/LSTM"),
    "02PT  Pretraining": (4.0, 3.0, "#DD8452", "attention, tokenizers, GPT, Llama,\npretraining, decoding, scaling"),
    "03FT  Fine-tuning": (7.0, 4.2, "#55A868", "SFT, LoRA (= peft),\npreference tuning"),
    "04RAG  Retrieval": (7.0, 1.8, "#C44E52", "embeddings, vector search (= faiss),\nchunking, reranking"),
    "05Agent  Agents": (10.0, 3.0, "#8172B3", "tool calls, planning,\nmemory, evaluation"),
    "06Inference  Engine": (10.0, -0.2, "#937860", "KV cache, quantization,\nthe C++ engine"),
    "cpp_kernels": (7.0, -0.2, "#7F7F7F", "AVX2 GEMM/GEMV, Q8_0/Q4_0,\nKV cache (pybind11)"),
}
EDGES = [("01CB  Basics", "02PT  Pretraining"), ("02PT  Pretraining", "03FT  Fine-tuning"),
         ("02PT  Pretraining", "04RAG  Retrieval"), ("03FT  Fine-tuning", "05Agent  Agents"),
         ("04RAG  Retrieval", "05Agent  Agents"), ("02PT  Pretraining", "06Inference  Engine"),
         ("cpp_kernels", "06Inference  Engine")]
W, H = 2.5, 1.3

fig, ax = plt.subplots(figsize=(13, 5.2))
for name, (x, y, colour, text) in SERIES.items():
    ax.add_patch(FancyBboxPatch((x - W / 2, y - H / 2), W, H, boxstyle="round,pad=0.05",
                                fc=colour, ec="none", alpha=0.9))
    ax.text(x, y + 0.28, name, ha="center", va="center", color="white", fontsize=12, weight="bold")
    ax.text(x, y - 0.2, text, ha="center", va="center", color="white", fontsize=8.5)
for a, b in EDGES:
    (xa, ya), (xb, yb) = SERIES[a][:2], SERIES[b][:2]
    points = [(xa + W / 2, ya), (xb - W / 2, yb)]
    if (a, b) == ("02PT  Pretraining", "06Inference  Engine"):  # around the boxes in between
        lane = (SERIES["04RAG  Retrieval"][1] - H / 2 + yb + H / 2) / 2
        points = [(xa, ya - H / 2), (xa, lane), (xb, lane), (xb, yb + H / 2 + 0.05)]
    ax.plot(*zip(*points[:-1]), color="#444", lw=1.5) if len(points) > 2 else None
    ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>", mutation_scale=18, color="#444", lw=1.5))
ax.set(xlim=(-0.5, 11.5), ylim=(-1.0, 5.1), title="LLMFS: from a NumPy neuron to a C++ inference engine")
ax.axis("off")
fig.tight_layout()
fig.savefig(Path(__file__).with_name("roadmap.png"), dpi=110)
