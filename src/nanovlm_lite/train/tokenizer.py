"""A small byte-level BPE tokenizer trained on a dataset's own text (the demo model's).

Shaped like SmolLM2's (and the parity fixture's): byte-level pre-tokenizer without a
prefix space, special tokens `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` at ids 0-2, the
256 byte symbols, then merges. Upstream's tokenizer builder then appends the 66 extra
tokens, so the config's `lm_base_vocab_size` must be this tokenizer's size exactly.
The corpus holds every answer both bare (as the assistant's turn starts) and after a
space (as inside a question or option list), so each answer word ends up one token if
the vocabulary has room; the answer letters A-J are single bytes, hence single tokens.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..model.bpe import train_bpe, write_tokenizer_config


def corpus_lines(questions, templates: Iterable[str] = ("default", "cloze", "da")) -> list[str]:
    """Training text: each question as the prompt templates render it, and its answers."""
    from ..evaluate.prompts import render
    lines = ["user", "assistant", "system"]
    answers = set()
    for q in questions:
        for name in templates:
            lines.append(render(name, q.question, q.choices))
        answers.update(q.choices)
        answers.update(q.direct_answers)
    for a in sorted(answers):  # bare and spaced, repeated so the merges reach them
        lines.extend([a, f" {a}", f"{a}."] * 20)
    return lines


def train_bpe_tokenizer(lines: list[str], out_dir, vocab_size: int = 512) -> int:
    """Writes tokenizer.json + tokenizer_config.json under `out_dir`; returns the base
    vocabulary size (special tokens + bytes + merges), which may be below `vocab_size`
    when the corpus runs out of pairs to merge."""
    tok = train_bpe(lines, vocab_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    write_tokenizer_config(out_dir)
    return tok.get_vocab_size()
