"""02PT-pretraining: from attention to a pretrained GPT and a real Llama.

- ``attention``   scaled dot-product and multi-head attention, masks (02PT/01)
- ``positions``   sinusoidal, learned and rotary position encodings (02PT/02)
- ``seq2seq``     the original encoder-decoder Transformer and its decoders (02PT/03)
- ``bpe``         byte-level BPE (GPT-2's) and the character tokenizer (02PT/04)
- ``gpt``         GPT-2, nanoGPT-style (02PT/05)
- ``lm_data``     token files on disk and random training windows (02PT/06)
- ``train``       the trainer: AdamW, schedule, accumulation, checkpoints, DDP (02PT/06)
- ``checkpoint``  atomic safetensors checkpoints that resume bitwise (02PT/06)
- ``decoding``    greedy, sampling, top-k/top-p, beam search like ``transformers.generate`` (02PT/07)
- ``llama``       Llama: RMSNorm, RoPE, SwiGLU, grouped-query attention (02PT/08)

Imports only the core (``llmfs.*``) and ``llmfs.basics``.
"""
