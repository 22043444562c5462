"""Instruction data made by a program: twelve small task families whose answers can be checked exactly.

    train = make_tasks(6000, "train", seed=0)
    train[0]  # {"family": "sort_words", "template": "sort_words/2", "instruction": "Arrange the words below
              #  from A to Z.", "input": "pear, apple, fig", "output": "apple, fig, pear"}
    check(train[0], " Apple, fig, pear ")  # -> True: exact match after light normalisation

No download and no licence: every example is generated, so an answer is right or wrong, and accuracy
is exact match, not a judge's opinion. Answers are short (a number, a word, a short list) so that a
135M model can learn them in a few thousand steps.

Held out two ways:
- **by instance**: each instance (the numbers, words or table behind an example, whatever the phrasing)
  falls in one split by a hash of its content: 80 % "train", 10 % "val", 10 % "test". No test
  instance is ever in the training set, whatever the seeds.
- **by template**: every family has five phrasings; the last one is never used by "train", "val" or
  "test", only by "test_templates" (on test instances): a model that learnt the task, not the wording,
  still answers it.
"""

from __future__ import annotations

import calendar
import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

SPLITS = ("train", "val", "test", "test_templates")

WORDS = (
    "apple", "arrow", "basket", "beach", "bottle", "bridge", "butter", "button", "camera", "candle",
    "carpet", "castle", "cherry", "circle", "cloud", "coffee", "copper", "cotton", "desert", "dinner",
    "doctor", "dragon", "eagle", "engine", "fabric", "farmer", "feather", "finger", "forest", "garden",
    "ginger", "glass", "guitar", "hammer", "harbor", "helmet", "honey", "island", "jacket", "jungle",
    "kettle", "kitten", "ladder", "lemon", "letter", "lizard", "magnet", "marble", "meadow", "mirror",
    "monkey", "mountain", "needle", "number", "orange", "oyster", "paper", "parrot", "pencil", "pepper",
    "pillow", "planet", "pocket", "potato", "puzzle", "rabbit", "ribbon", "river", "rocket", "saddle",
    "salmon", "shadow", "silver", "singer", "spider", "spring", "stone", "sugar", "summer", "table",
    "teacher", "temple", "thunder", "ticket", "tiger", "tomato", "tunnel", "turtle", "valley", "velvet",
    "violin", "wagon", "walnut", "water", "window", "winter", "wizard", "yellow", "zebra", "anchor",
)
NAMES = (
    "Anna", "Ben", "Cara", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemal", "Lena",
    "Maya", "Nils", "Olga", "Pedro", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Yusuf",
)
CITIES = ("Paris", "Lagos", "Lima", "Oslo", "Delhi", "Tokyo", "Cairo", "Quito", "Seoul", "Rome",
          "Accra", "Hanoi", "Dublin", "Kyiv", "Perth", "Bogota")
ITEMS = ("apples", "pencils", "marbles", "stickers", "cookies", "books", "coins", "cards", "shells",
         "stamps", "balloons", "oranges")
UNITS = (  # (from, to, factor): integer conversions only
    ("km", "m", 1000), ("m", "cm", 100), ("cm", "mm", 10), ("kg", "g", 1000),
    ("litres", "millilitres", 1000), ("hours", "minutes", 60), ("minutes", "seconds", 60),
    ("days", "hours", 24), ("weeks", "days", 7), ("years", "months", 12),
)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


@dataclass(frozen=True)
class Family:
    """A task family: ``make(rng) -> (instance key, slots, input, output)`` and five phrasings.

    A template is a format string over the slots, or a dict ``kind -> format string`` when the
    wording depends on the instance's ``slots["kind"]`` (add / subtract / multiply...). The last
    template is held out for the "test_templates" split."""

    name: str
    templates: tuple
    make: Callable[[random.Random], tuple[tuple, dict, str, str]]
    case_sensitive: bool = False


def _arithmetic(rng: random.Random):
    kind = rng.choice(("add", "sub", "mul"))
    if kind == "add":
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        answer = a + b
    elif kind == "sub":
        a = rng.randint(10, 99)
        b = rng.randint(1, a - 1)
        answer = a - b
    else:
        a, b = rng.randint(2, 9), rng.randint(2, 12)
        answer = a * b
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    return (kind, a, b, name, item), {"kind": kind, "a": a, "b": b, "name": name, "item": item}, "", str(answer)


def _unit_conversion(rng: random.Random):
    src, dst, factor = rng.choice(UNITS)
    v = rng.randint(2, 200)
    return (src, v), {"v": v, "src": src, "dst": dst}, "", str(v * factor)


def _distinct(rng: random.Random, population, lo: int, hi: int) -> list:
    return rng.sample(population, rng.randint(lo, hi))


def _sort_numbers(rng: random.Random):
    nums = _distinct(rng, range(100), 3, 5)
    return tuple(nums), {}, ", ".join(map(str, nums)), ", ".join(map(str, sorted(nums)))


def _sort_words(rng: random.Random):
    words = _distinct(rng, WORDS, 3, 5)
    return tuple(words), {}, ", ".join(words), ", ".join(sorted(words))


def _pseudo_word(rng: random.Random) -> str:
    """A pronounceable made-up word such as "tobanu" or "kesim": 2 or 3 syllables, 4 to 7 letters."""
    word = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 3)))
    return word + rng.choice("klmnrst") if rng.random() < 0.3 else word


def _word(rng: random.Random, max_len: int = 8) -> str:
    """Half the time a real word of WORDS, half a made-up one: string tasks then have ~10^5 instances."""
    if rng.random() < 0.5:
        return rng.choice([w for w in WORDS if len(w) <= max_len])
    return _pseudo_word(rng)


def _reverse(rng: random.Random):
    word = _word(rng, max_len=7)
    return (word,), {}, word, word[::-1]


def _uppercase(rng: random.Random):
    text = " ".join(_distinct(rng, WORDS, 1, 3))
    return (text,), {}, text, text.upper()


def _remove_vowels(rng: random.Random):
    word = _word(rng)
    return (word,), {}, word, re.sub("[aeiou]", "", word)


def _date_format(rng: random.Random):
    year, month = rng.randint(1950, 2049), rng.randint(1, 12)
    day = rng.randint(1, calendar.monthrange(year, month)[1])
    iso = f"{year:04d}-{month:02d}-{day:02d}"
    return (iso,), {}, iso, f"{day} {MONTHS[month - 1]} {year}"


def _table_lookup(rng: random.Random):
    names = _distinct(rng, NAMES, 3, 4)
    rows = [(n, rng.randint(18, 90), rng.choice(CITIES)) for n in names]
    name, age, city = rng.choice(rows)
    column = rng.choice(("age", "city"))
    table = "\n".join(["name | age | city"] + [f"{n} | {a} | {c}" for n, a, c in rows])
    return (table, name, column), {"name": name, "column": column}, table, str(age if column == "age" else city)


def _count_letter(rng: random.Random):
    word = _word(rng)
    letter = rng.choice(word) if rng.random() < 0.8 else rng.choice("abcdefghijklmnopqrstuvwxyz")
    return (word, letter), {"letter": letter}, word, str(word.count(letter))


def _compare(rng: random.Random):
    a, b = rng.sample(range(1000), 2)
    kind = rng.choice(("larger", "smaller"))
    return (kind, a, b), {"kind": kind, "a": a, "b": b}, "", str(max(a, b) if kind == "larger" else min(a, b))


def _parity(rng: random.Random):
    n = rng.randint(0, 9999)
    return (n,), {"n": n}, "", "odd" if n % 2 else "even"


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("arithmetic", (
        {"add": "{name} has {a} {item} and then gets {b} more. How many {item} does {name} have now?",
         "sub": "{name} has {a} {item} and gives {b} away. How many {item} does {name} have left?",
         "mul": "{name} has {a} bags with {b} {item} in each bag. How many {item} does {name} have in total?"},
        {"add": "There are {a} {item} in a box. {name} puts in {b} more. How many {item} are in the box now?",
         "sub": "There are {a} {item} in a box. {name} takes out {b}. How many {item} are left in the box?",
         "mul": "{name} fills {a} boxes with {b} {item} each. How many {item} is that altogether?"},
        {"add": "{name} bought {a} {item} on Monday and {b} {item} on Tuesday. How many {item} did {name} buy in all?",
         "sub": "{name} had {a} {item} and lost {b} of them. How many {item} does {name} still have?",
         "mul": "{name} buys {a} packs of {item}. Each pack holds {b}. How many {item} does {name} buy?"},
        {"add": "A shelf holds {a} {item}. {name} adds {b} {item}. What is the number of {item} on the shelf now?",
         "sub": "A shelf holds {a} {item}. {name} removes {b} of them. What is the number of {item} on the shelf now?",
         "mul": "Each of {a} children gets {b} {item} from {name}. How many {item} does {name} hand out?"},
        {"add": "{name} starts with {a} {item} and receives {b} more. Give the number of {item} {name} ends with.",
         "sub": "{name} starts with {a} {item}, then uses {b}. Give the number of {item} that remain.",
         "mul": "Count the {item} of {name}: {a} rows of {b} {item} each."},
    ), _arithmetic),
    Family("unit_conversion", (
        "Convert {v} {src} to {dst}.",
        "How many {dst} are there in {v} {src}?",
        "What is {v} {src} in {dst}?",
        "{v} {src} equals how many {dst}?",
        "Express {v} {src} as a number of {dst}.",
    ), _unit_conversion),
    Family("sort_numbers", (
        "Sort these numbers from smallest to largest.",
        "Put the following numbers in ascending order.",
        "Arrange the numbers below in increasing order.",
        "List these numbers from the lowest to the highest.",
        "Reorder the numbers so that each one is bigger than the one before it.",
    ), _sort_numbers),
    Family("sort_words", (
        "Sort these words in alphabetical order.",
        "Put the following words in alphabetical order.",
        "Arrange the words below from A to Z.",
        "List these words alphabetically.",
        "Order the words as they would appear in a dictionary.",
    ), _sort_words),
    Family("reverse", (
        "Reverse the letters of this word.",
        "Write this word backwards.",
        "Spell the word below in reverse order.",
        "What is this word when read from right to left?",
        "Flip the order of the letters in the word.",
    ), _reverse),
    Family("uppercase", (
        "Rewrite the text in capital letters.",
        "Convert this text to uppercase.",
        "Write the following in all caps.",
        "Change every letter of the text to upper case.",
        "Make each letter of the text a capital letter.",
    ), _uppercase, case_sensitive=True),
    Family("remove_vowels", (
        "Remove the vowels from this word.",
        "Delete every vowel (a, e, i, o, u) from the word.",
        "Write the word without its vowels.",
        "Drop the letters a, e, i, o and u from the word.",
        "Keep only the consonants of the word, in order.",
    ), _remove_vowels),
    Family("date_format", (
        "Write this date as day, month name and year, like 4 July 1999.",
        "Rewrite the date in the form 'day month year' with the month spelled out.",
        "Convert this ISO date to a date with the month's name (for example 25 December 2010).",
        "How is this date written as day, month name, year?",
        "Spell out the month and give the date as day month year.",
    ), _date_format),
    Family("table_lookup", (
        "Using the table, what is the {column} of {name}?",
        "Look up {name}'s {column} in the table.",
        "According to the table below, what is {name}'s {column}?",
        "Find the {column} of {name} in this table.",
        "Read the table and report {name}'s {column}.",
    ), _table_lookup),
    Family("count_letter", (
        "How many times does the letter '{letter}' appear in this word?",
        "Count the letter '{letter}' in the word below.",
        "How often does '{letter}' occur in this word?",
        "In the word below, how many '{letter}'s are there?",
        "Give the number of '{letter}' letters in the word.",
    ), _count_letter),
    Family("compare", (
        {"larger": "Which number is larger, {a} or {b}?", "smaller": "Which number is smaller, {a} or {b}?"},
        {"larger": "Which is the bigger number: {a} or {b}?", "smaller": "Which is the smaller number: {a} or {b}?"},
        {"larger": "Of {a} and {b}, which is greater?", "smaller": "Of {a} and {b}, which is less?"},
        {"larger": "Give the maximum of {a} and {b}.", "smaller": "Give the minimum of {a} and {b}."},
        {"larger": "Between {a} and {b}, name the higher number.", "smaller": "Between {a} and {b}, name the lower number."},
    ), _compare),
    Family("parity", (
        "Is {n} even or odd?",
        "Is the number {n} odd or even?",
        "Tell me whether {n} is even or odd.",
        "{n}: even or odd?",
        "Say if {n} is an even or an odd number.",
    ), _parity),
]}
N_HELD_OUT_TEMPLATES = 1  # the last template of every family


def templates_of(family: str, split: str) -> list[int]:
    """Indices of the templates that ``split`` uses for ``family``."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {sorted(FAMILIES)}, got {family!r}")
    _check_split(split)
    n = len(FAMILIES[family].templates)
    held = range(n - N_HELD_OUT_TEMPLATES, n)
    return list(held) if split == "test_templates" else [i for i in range(n) if i not in held]


def instance_split(family: str, key: tuple) -> str:
    """"train", "val" or "test": where an instance belongs, from a hash of its content (80/10/10).
    sha256, not Python's ``hash``: the same on every run and every machine."""
    bucket = int(hashlib.sha256(f"{family}|{key!r}".encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def _check_split(split) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")


def _render(family: Family, template_index: int, slots: dict) -> str:
    template = family.templates[template_index]
    if isinstance(template, dict):
        template = template[slots["kind"]]
    return template.format(**slots)


def make_tasks(n: int, split: str = "train", seed: int = 0, families: list[str] | None = None) -> list[dict]:
    """``n`` distinct examples of ``split``, the families in equal shares (round robin), shuffled.

    Each example is ``{"family", "template", "instruction", "input", "output"}``; "template" is
    "family/index". The same (n, split, seed, families) always gives the same list.
    Raises ``ValueError`` when a family has fewer distinct examples in ``split`` than asked for."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    _check_split(split)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if families is None:
        families = list(FAMILIES)
    if (not isinstance(families, (list, tuple)) or not families
            or not all(isinstance(f, str) and f in FAMILIES for f in families) or len(set(families)) != len(families)):
        raise ValueError(f"families must be a non-empty list of distinct names from {sorted(FAMILIES)}, got {families!r}")
    rng = random.Random(f"llmfs.finetune.tasks|{split}|{seed}")  # str seeds are hashed with sha512: stable
    instance_part = "test" if split == "test_templates" else split
    seen: set[tuple[str, str]] = set()
    examples = []
    for i in range(n):
        family = FAMILIES[families[i % len(families)]]
        allowed = templates_of(family.name, split)
        for _ in range(10_000):  # a test instance turns up 1 time in 10: enough tries to find a new one
            key, slots, input_text, output = family.make(rng)
            if instance_split(family.name, key) != instance_part:
                continue
            t = rng.choice(allowed)
            instruction = _render(family, t, slots)
            if (instruction, input_text) not in seen:
                break
        else:
            raise ValueError(f"asked for {n} examples of split {split!r}: family {family.name!r} has run out "
                             f"of distinct ones; ask for fewer")
        seen.add((instruction, input_text))
        examples.append({"family": family.name, "template": f"{family.name}/{t}", "instruction": instruction,
                         "input": input_text, "output": output})
    rng.shuffle(examples)
    return examples


def normalize(text: str, case_sensitive: bool = False) -> str:
    """Light normalisation before comparing answers: outer spaces and one final full stop dropped,
    runs of spaces made one, list commas as ", ", and lower case unless ``case_sensitive``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = re.sub(r"\s+", " ", text.strip())
    text = re.sub(r"\s*,\s*", ", ", text).removesuffix(".").strip()
    return text if case_sensitive else text.lower()


def check(example: dict, answer: str) -> bool:
    """True when ``answer`` is the example's output, after ``normalize`` (case kept where the family
    is about case, such as "uppercase")."""
    if not isinstance(example, dict) or not {"family", "output"} <= set(example) or example["family"] not in FAMILIES:
        raise ValueError(f"example must be a dict made by make_tasks (with 'family' and 'output'), got {example!r:.80}")
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str (the model's decoded text), got {type(answer).__name__}")
    sensitive = FAMILIES[example["family"]].case_sensitive
    return normalize(answer, sensitive) == normalize(example["output"], sensitive)
