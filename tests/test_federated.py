"""llmfs.finetune.federated: the splits keep every example once, non-IID clients see few families, FedAvg is
the weighted mean (and the mean of one state is that state), message sizes are the safetensors bytes."""

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load as safetensors_load

from llmfs.finetune import federated, lora
from llmfs.finetune.tasks import make_tasks


@pytest.fixture(scope="module")
def examples():
    return make_tasks(240, "train", seed=0)


def _ids(parts):
    return sorted(id(e) for p in parts for e in p)


def test_iid_split_deals_every_example_once(examples):
    parts = federated.split_iid(examples, 5, seed=1)
    assert _ids(parts) == sorted(id(e) for e in examples)
    assert {len(p) for p in parts} == {48}
    assert federated.split_iid(examples, 5, seed=1) == parts and federated.split_iid(examples, 5, seed=2) != parts


@pytest.mark.parametrize("n_clients, per_client", [(4, 3), (6, 2), (3, 5), (12, 1), (2, 12)])
def test_family_split_is_non_iid_and_complete(examples, n_clients, per_client):
    parts = federated.split_by_family(examples, n_clients, per_client, seed=0)
    assert _ids(parts) == sorted(id(e) for e in examples), "every example goes to exactly one client"
    families = {e["family"] for e in examples}
    held = [{e["family"] for e in p} for p in parts]
    assert all(len(h) <= per_client for h in held), "a client holds more families than it should"
    assert set().union(*held) == families, "a family is held by no client"
    if n_clients * per_client == len(families):  # a partition: each family on exactly one client
        assert sum(len(h) for h in held) == len(families)


def test_fedavg_is_the_weighted_mean():
    g = torch.Generator().manual_seed(0)
    states = [{"a": torch.randn(3, 4, generator=g), "b": torch.randn(2, generator=g)} for _ in range(3)]
    avg = federated.fedavg(states, weights=[1, 2, 7])
    for k in ("a", "b"):
        expected = (states[0][k] * 1 + states[1][k] * 2 + states[2][k] * 7) / 10
        assert torch.allclose(avg[k], expected, atol=1e-6)
    assert all(torch.equal(federated.fedavg([states[0]])[k], states[0][k]) for k in states[0])
    equal = federated.fedavg(states)
    assert torch.allclose(equal["a"], sum(s["a"] for s in states) / 3, atol=1e-6)
    half = federated.fedavg([{k: v.bfloat16() for k, v in s.items()} for s in states])
    assert half["a"].dtype == torch.bfloat16


def test_fedavg_of_lora_adapters_round_trips_into_a_model():
    torch.manual_seed(0)
    models = [lora.apply_lora(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)), r=2, alpha=4, target_modules=["0", "2"])
              for _ in range(2)]
    for m in models:
        for p in m.parameters():
            if p.requires_grad:
                nn.init.normal_(p)
    avg = federated.fedavg([lora.lora_state_dict(m) for m in models], weights=[3, 1])
    lora.load_lora_state_dict(models[0], avg)
    assert all(torch.allclose(lora.lora_state_dict(models[0])[k], avg[k]) for k in avg)
    message = federated.message_bytes(avg)
    assert message > sum(v.numel() * 4 for v in avg.values())  # tensors plus the header
    with pytest.raises(ValueError, match="does not fit"):
        lora.load_lora_state_dict(models[1], {k: v[:1] for k, v in avg.items()})


def test_message_bytes_is_the_safetensors_size():
    state = {"x": torch.zeros(10, 3), "y": torch.ones(4, dtype=torch.bfloat16)}
    from safetensors.torch import save
    blob = save(state)
    assert federated.message_bytes(state) == len(blob) and set(safetensors_load(blob)) == {"x", "y"}


@pytest.mark.parametrize("call, message", [
    (lambda ex: federated.split_iid(ex, 0), "n_clients"),
    (lambda ex: federated.split_iid(ex, 10_000), "n_clients"),
    (lambda ex: federated.split_iid([], 2), "examples"),
    (lambda ex: federated.split_iid("abc", 2), "examples"),
    (lambda ex: federated.split_by_family(ex, 2, 3), "families_per_client"),  # 6 < 12 families: some held by none
    (lambda ex: federated.split_by_family(ex, 4, 0), "families_per_client"),
    (lambda ex: federated.split_by_family(ex, 4, True), "families_per_client"),
    (lambda ex: federated.split_by_family([{"x": 1}] * 4, 2, 1), "family"),
    (lambda ex: federated.fedavg([]), "states"),
    (lambda ex: federated.fedavg({"a": torch.zeros(1)}), "states"),
    (lambda ex: federated.fedavg([{"a": torch.zeros(2)}, {"b": torch.zeros(2)}]), "other keys"),
    (lambda ex: federated.fedavg([{"a": torch.zeros(2)}, {"a": torch.zeros(3)}]), "float tensor like"),
    (lambda ex: federated.fedavg([{"a": torch.zeros(2, dtype=torch.long)}]), "float tensor like"),
    (lambda ex: federated.fedavg([{"a": torch.zeros(2)}] * 2, weights=[1]), "weights"),
    (lambda ex: federated.fedavg([{"a": torch.zeros(2)}] * 2, weights=[0, 0]), "weights"),
    (lambda ex: federated.fedavg([{"a": torch.zeros(2)}] * 2, weights=[-1, 2]), "weights"),
    (lambda ex: federated.fedavg([{"a": torch.zeros(2)}] * 2, weights=[float("nan"), 2]), "weights"),
    (lambda ex: federated.fedavg([{"a": torch.zeros(2)}] * 2, weights="ab"), "weights"),
    (lambda ex: federated.message_bytes([1, 2]), "state"),
])
def test_bad_input_clear_error(examples, call, message):
    with pytest.raises(ValueError, match=message):
        call(examples)
