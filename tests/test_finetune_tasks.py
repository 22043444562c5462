"""Generated instruction data (llmfs.finetune.tasks): families, splits held out by instance and by
template, determinism, and the exact-match checker."""

import re
from collections import Counter

import pytest

from llmfs.finetune import tasks
from llmfs.finetune.tasks import FAMILIES, SPLITS, check, instance_split, make_tasks, normalize, templates_of

N = 600  # 50 per family


@pytest.fixture(scope="module")
def data():
    return {split: make_tasks(N, split, seed=0) for split in SPLITS}


def test_at_least_ten_families_each_with_several_templates():
    assert len(FAMILIES) >= 10
    for family in FAMILIES.values():
        assert len(family.templates) >= 4, family.name
        assert len(templates_of(family.name, "train")) >= 3
        assert len(templates_of(family.name, "test_templates")) >= 1


def test_examples_have_the_fields_and_every_family_in_equal_shares(data):
    for split, examples in data.items():
        assert len(examples) == N
        for ex in examples:
            assert set(ex) == {"family", "template", "instruction", "input", "output"}
            assert all(isinstance(v, str) for v in ex.values()) and ex["instruction"] and ex["output"]
            assert ex["template"].startswith(ex["family"] + "/")
        counts = Counter(ex["family"] for ex in examples)
        assert set(counts) == set(FAMILIES) and set(counts.values()) == {N // len(FAMILIES)}, (split, counts)


def test_answers_are_short():
    examples = make_tasks(3000, "train", seed=1)
    lengths = sorted(len(ex["output"]) for ex in examples)
    median, longest = lengths[len(lengths) // 2], lengths[-1]
    print(f"\nanswer length in characters: median {median}, longest {longest}")
    assert median <= 6 and longest <= 45


def test_deterministic_for_a_seed_and_different_across_seeds(data):
    assert make_tasks(N, "train", seed=0) == data["train"]
    assert make_tasks(N, "train", seed=1) != data["train"]
    assert make_tasks(5, "val", seed=3, families=["parity"]) == make_tasks(5, "val", seed=3, families=["parity"])


def test_examples_are_distinct_within_a_split(data):
    for split, examples in data.items():
        assert len({(ex["instruction"], ex["input"]) for ex in examples}) == N, split


def instance(ex: dict) -> tuple:
    """What an example is about, whatever its wording: its data (input, the numbers, letter, name, unit
    or item named in the instruction) and its answer."""
    f, instr = ex["family"], ex["instruction"]
    extra = re.findall(r"\d+", instr)
    if f == "count_letter":
        extra += re.findall(r"'([a-z])'", instr)
    elif f == "table_lookup":
        extra += [n for n in tasks.NAMES if n in instr] + [c for c in ("age", "city") if c in instr]
    elif f == "unit_conversion":
        extra += re.findall(r"\d+ (\w+)", instr)
    elif f == "arithmetic":
        extra += [n for n in tasks.NAMES if re.search(rf"\b{n}\b", instr)] + [i for i in tasks.ITEMS if i in instr]
    return f, ex["input"], tuple(extra), ex["output"]


def test_splits_are_held_out_by_instance(data):
    """No instance (data and answer, whatever the wording) of val, test or test_templates is in train."""
    train = {instance(ex) for ex in make_tasks(6000, "train", seed=0)}
    for split in ("val", "test", "test_templates"):
        clash = [instance(ex) for ex in data[split] if instance(ex) in train]
        assert not clash, (split, clash[:3])
    assert {instance(ex) for ex in data["val"]}.isdisjoint({instance(ex) for ex in data["test"]})
    # test_templates asks about test instances, in new words
    assert {instance(ex) for ex in data["test_templates"]} & {instance(ex) for ex in make_tasks(3000, "test", seed=0)}


def test_instance_split_is_80_10_10():
    counts = Counter(instance_split("parity", (n,)) for n in range(10_000))
    assert abs(counts["train"] - 8000) < 250 and abs(counts["test"] - 1000) < 150 and abs(counts["val"] - 1000) < 150


def test_held_out_templates_are_never_seen_in_training(data):
    seen = {ex["template"] for split in ("train", "val", "test") for ex in data[split]}
    held = {ex["template"] for ex in data["test_templates"]}
    assert held and seen.isdisjoint(held)
    assert {t.split("/")[0] for t in held} == set(FAMILIES)  # every family has its held-out phrasing
    # and the wording differs: no held-out instruction (with its data removed) matches a training one
    def skeleton(text):
        return re.sub(r"\d+|'[a-z]'|[A-Z][a-z]+(?= |'|\.|\?|,)", "#", text)

    train_skeletons = {skeleton(ex["instruction"]) for ex in make_tasks(6000, "train", seed=0)}
    assert not [ex["instruction"] for ex in data["test_templates"] if skeleton(ex["instruction"]) in train_skeletons]


def test_every_output_is_right_by_an_independent_check():
    """Each family's answer recomputed here from the example's text."""
    months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December"]
    for ex in make_tasks(1200, "train", seed=2):
        f, instr, inp, out = ex["family"], ex["instruction"], ex["input"], ex["output"]
        if f == "sort_numbers":
            assert out == ", ".join(map(str, sorted(int(x) for x in inp.split(", "))))
        elif f == "sort_words":
            assert out.split(", ") == sorted(inp.split(", "))
        elif f == "reverse":
            assert out == inp[::-1]
        elif f == "uppercase":
            assert out == inp.upper()
        elif f == "remove_vowels":
            assert out == "".join(c for c in inp if c not in "aeiou")
        elif f == "count_letter":
            assert out == str(inp.count(re.search(r"'([a-z])'", instr).group(1)))
        elif f == "parity":
            assert out == ("odd" if int(re.search(r"\d+", instr).group()) % 2 else "even")
        elif f == "compare":
            a, b = map(int, re.findall(r"\d+", instr))
            larger = any(w in instr for w in ("larger", "bigger", "greater", "maximum", "higher"))
            assert out == str(max(a, b) if larger else min(a, b))
        elif f == "date_format":
            y, m, d = map(int, inp.split("-"))
            assert out == f"{d} {months[m - 1]} {y}"
        elif f == "table_lookup":
            rows = {line.split(" | ")[0]: line.split(" | ") for line in inp.split("\n")[1:]}
            name = next(n for n in rows if n in instr)
            assert out == rows[name][1 if "age" in instr else 2]
        elif f == "unit_conversion":
            v, unit = re.search(r"(\d+) (\w+)", instr).groups()
            assert int(out) == int(v) * {src: k for src, _, k in tasks.UNITS}[unit]
        elif f == "arithmetic":
            a, b = map(int, re.findall(r"\d+", instr)[:2])
            assert int(out) in {a + b, a - b, a * b}


def test_check_accepts_the_answer_and_light_variants(data):
    for ex in data["test"]:
        assert check(ex, ex["output"])
        assert check(ex, f"  {ex['output']}.\n")
    sorted_ex = next(ex for ex in data["test"] if ex["family"] == "sort_words")
    assert check(sorted_ex, sorted_ex["output"].replace(", ", " ,  "))
    date = next(ex for ex in data["test"] if ex["family"] == "date_format")
    assert check(date, date["output"].lower())  # case does not matter here...
    upper = next(ex for ex in data["test"] if ex["family"] == "uppercase")
    assert not check(upper, upper["output"].lower())  # ...but it does when the task is about case


def test_check_rejects_wrong_answers(data):
    for ex in data["test"]:
        assert not check(ex, "")
        assert not check(ex, ex["output"] + "0")
        assert not check(ex, "The answer is " + ex["output"])  # exact match: no extra words
    parity = next(ex for ex in data["test"] if ex["family"] == "parity")
    assert not check(parity, "odd" if parity["output"] == "even" else "even")


def test_normalize():
    assert normalize("  Apple ,fig,  PEAR. ") == "apple, fig, pear"
    assert normalize("A  B", case_sensitive=True) == "A B"


@pytest.mark.parametrize("call,error,message", [
    (lambda: make_tasks(0), ValueError, r"n must be an integer >= 1, got 0"),
    (lambda: make_tasks(2.5), ValueError, r"n must be an integer >= 1"),
    (lambda: make_tasks(5, "dev"), ValueError, r"split must be one of 'train', 'val', 'test', 'test_templates', got 'dev'"),
    (lambda: make_tasks(5, seed="0"), TypeError, r"seed must be an int"),
    (lambda: make_tasks(5, families=["poetry"]), ValueError, r"families must be a non-empty list of distinct names"),
    (lambda: make_tasks(5, families=[]), ValueError, r"families must be a non-empty list"),
    (lambda: make_tasks(100_000, "test", families=["unit_conversion"]), ValueError, r"has run out of distinct ones"),
    (lambda: check({"output": "1"}, "1"), ValueError, r"example must be a dict made by make_tasks"),
    (lambda: check(make_tasks(1)[0], 1), TypeError, r"answer must be a str"),
    (lambda: templates_of("poetry", "train"), ValueError, r"family must be one of"),
    (lambda: normalize(None), TypeError, r"text must be a str"),
])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
