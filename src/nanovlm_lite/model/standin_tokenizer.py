"""A STAND-IN for SmolLM2's tokenizer, for speed and FLOP work on presets offline.

The `nanovlm-460m` preset names its tokenizer by hub id (HuggingFaceTB/SmolLM2-360M-Instruct),
which cannot be fetched without the network. Speed does not depend on which text token
is which, only on how many there are, so `--random` runs build this one instead: a
byte-level BPE shaped like SmolLM2's (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>` at ids
0-2, the 256 byte symbols, merges learned from a small built-in English corpus so common
words are one token each), padded with unreachable filler tokens to exactly
`cfg.lm_base_vocab_size`. `build_tokenizer` then appends the 66 extra tokens at ids
49152+ and the chat template, exactly as for the real tokenizer.

It is NOT SmolLM2's tokenizer: text splits differently, so a question's token count can
differ from the real one by a few tokens (the image tokens, the chat template's special
tokens and the answer letters A-J, single bytes here, are the same kind of token). Its
outputs say nothing about accuracy; never use it with real weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .bpe import SPECIAL_TOKENS, train_bpe, write_tokenizer_config

NOTE = ("stand-in tokenizer (byte-level BPE on a small built-in corpus, not SmolLM2's): "
        "text token counts per question differ slightly from the real tokenizer's")
VERSION = 1
# Words of A-OKVQA-style questions and choices (COCO objects, colours, actions, question
# words) and of the prompt templates; each becomes one token bare and after a space.
CORPUS_WORDS = """
what which who whom whose where when why how is are was were be been being do does did
can could would should will may might must has have had the a an this that these those
there here it its they them their he him his she her we you your i my me our of in on at
to from by with for about into over under above below near behind between next front
back left right top bottom side middle up down out off through across around along
and or but not no yes if then than so very most more less many much some any all each
other another one two three four five six seven eight nine ten first last only just also
likely probably reason purpose kind type sort color colour shape size made material
season weather time day night place room country city sport game animal food drink
person people man men woman women boy girl child children kid baby player players
doing holding wearing eating sitting standing riding playing looking using carrying
walking running flying waiting going watching used called named seen shown pictured
red blue green yellow black white brown orange purple pink gray grey silver gold
small large big little tall short long old new young wet dry hot cold open closed full
empty clean dirty bright dark happy sad safe dangerous busy quiet
bicycle car motorcycle airplane bus train truck boat traffic light fire hydrant stop
sign parking meter bench bird cat dog horse sheep cow elephant bear zebra giraffe
backpack umbrella handbag tie suitcase frisbee skis snowboard ball kite bat glove
skateboard surfboard tennis racket bottle wine glass cup fork knife spoon bowl banana
apple sandwich orange broccoli carrot hot pizza donut cake chair couch potted plant bed
dining table toilet tv laptop mouse remote keyboard cell phone microwave oven toaster
sink refrigerator book clock vase scissors teddy hair drier toothbrush
street road sidewalk building house window door wall floor field grass tree trees sky
water beach ocean snow mountain park kitchen bathroom bedroom office store restaurant
shirt hat jacket helmet shoes pants dress sunglasses wheel sign pole fence roof
summer winter spring fall autumn morning afternoon evening rain sunny cloudy
question answer answers option options choice choices letter correct reply choose
only single word phrase using image picture photo shown user assistant system
""".split()


def corpus_lines() -> list[str]:
    """Training text: the words bare, after a space and capitalised, and prompt phrases."""
    from ..evaluate.prompts import TEMPLATES
    lines = list(TEMPLATES.values())
    for word in CORPUS_WORDS:
        for form in (word, word.capitalize()):
            lines.extend([form, f" {form}", f" {form}?", f" {form}."] * 8)
    return lines


def _tokenizer_json(vocab_size: int) -> str:
    """tokenizer.json text: SmolLM2-shaped byte-level BPE with exactly `vocab_size` tokens."""
    n_base = len(SPECIAL_TOKENS) + 256
    if vocab_size < n_base:
        raise ValueError(f"a stand-in tokenizer needs at least {n_base} base tokens, got {vocab_size}")
    tok = train_bpe(corpus_lines(), min(vocab_size, 4096))
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    # fillers: plain vocabulary entries no merge produces (text never maps to them)
    k = 0
    while len(vocab) < vocab_size:
        vocab[f"<standin_filler_{k}>"] = len(vocab)
        k += 1
    if sorted(vocab.values()) != list(range(vocab_size)):
        raise RuntimeError("stand-in tokenizer: ids are not 0..vocab_size-1")
    return json.dumps(data, ensure_ascii=False)


def default_cache_dir() -> Path:
    root = os.environ.get("NANOVLM_LITE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nanovlm_lite")
    return Path(root)


def standin_tokenizer_dir(vocab_size: int, cache_dir: str | os.PathLike | None = None) -> Path:
    """A directory holding the stand-in tokenizer (built once, then reused)."""
    key = hashlib.sha256(f"{VERSION}:{vocab_size}:{' '.join(CORPUS_WORDS)}".encode()).hexdigest()[:12]
    out = Path(cache_dir or default_cache_dir()) / f"standin-tokenizer-{vocab_size}-{key}"
    if (out / "tokenizer.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        (tmp / "tokenizer.json").write_text(_tokenizer_json(vocab_size))
        write_tokenizer_config(tmp, standin=NOTE)
        (tmp / "README.md").write_text(f"# Stand-in tokenizer\n\n{NOTE}.\n{__doc__}")
        try:
            os.replace(tmp, out)
        except OSError:  # another process got there first
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_standin_tokenizer(cfg, cache_dir: str | os.PathLike | None = None):
    """The stand-in with the model's 66 extra tokens and chat template (see `build_tokenizer`)."""
    from .prompt import build_tokenizer
    tokenizer = build_tokenizer(cfg, str(standin_tokenizer_dir(cfg.lm_base_vocab_size, cache_dir)))
    tokenizer.standin = NOTE
    return tokenizer
