"""01CB-basics: neural networks from zero.

- ``mlp_numpy``   an MLP in NumPy: init, forward, backward, SGD with momentum (01CB/03)
- ``schedule``    the course's learning-rate schedule: linear warmup, then cosine (01CB/03, 02PT/06)
- ``autograd``    a scalar autograd engine, micrograd-style (01CB/04)
- ``torch_loop``  a small PyTorch training loop for classifiers (01CB/05, 06)
- ``conv``        convolution and max-pooling in NumPy via im2col (01CB/06)
"""
