"""Multiple-choice scoring, one scorer per protocol.

- letter:   one prefill; the prediction is the choice whose letter token has the highest
            logit among the choices' letters. No decode step.
- cloze:    the log-likelihood of each choice's text as the assistant's answer after the
            question; the image+question prefix runs once and its KV cache is reused by
            every choice. Normalised by token count ("mean", the default) or not ("sum").
- generate: greedy decoding up to max_new_tokens, then parse a letter or a choice text.
            An answer that can't be parsed is wrong and counted, never defaulted to "A".
"""
from __future__ import annotations

import re

import torch

from ..lm import run_lm
from .prompts import LETTERS, letter_token_ids


# --------------------------------------------------------------------------------- letter
@torch.inference_mode()
def score_letter(engine, prompts, choices_per_q: list[list[str]], settings) -> list[dict]:
    logits = engine.next_token_logits(prompts, settings)
    out = []
    for row, choices in zip(logits, choices_per_q):
        ids = letter_token_ids(engine.tokenizer, len(choices))
        letter_logits = row[ids]
        out.append({"predicted_idx": int(letter_logits.argmax()),
                    "letter_logits": {LETTERS[i]: float(v) for i, v in enumerate(letter_logits)},
                    "decode_tokens": 0})
    return out


# ---------------------------------------------------------------------------------- cloze
def choice_token_ids(tokenizer, choice: str) -> list[int]:
    ids = tokenizer.encode(choice.strip(), add_special_tokens=False)
    if not ids:
        raise ValueError(f"choice {choice!r} tokenizes to nothing")
    return ids


@torch.inference_mode()
def choice_log_likelihoods(engine, prompts, choices_per_q: list[list[str]], settings
                           ) -> list[list[tuple[float, int]]]:
    """(sum of log-probs, token count) of every choice of every prompt. The prefixes run
    once as a batch; every (question, choice) row then continues from the repeated cache."""
    hidden, prefix_mask, cache = engine.prefill(prompts, settings)
    first_logp = torch.log_softmax(engine.head(hidden[:, -1]), -1)       # predicts token 0
    n_choices = max(len(c) for c in choices_per_q)
    tokens = [[choice_token_ids(engine.tokenizer, c) for c in cs] for cs in choices_per_q]
    width = max(len(t) for ts in tokens for t in ts)
    pad = engine.tokenizer.pad_token_id
    rows = len(prompts) * n_choices
    cont = torch.full((rows, width), pad, dtype=torch.long)
    cont_mask = torch.zeros((rows, width), dtype=torch.long)
    for q, ts in enumerate(tokens):
        for c, t in enumerate(ts):
            cont[q * n_choices + c, : len(t)] = torch.tensor(t)
            cont_mask[q * n_choices + c, : len(t)] = 1
    cont, cont_mask = cont.to(engine.device), cont_mask.to(engine.device)
    cache.batch_repeat_interleave(n_choices)
    prefix_mask = prefix_mask.repeat_interleave(n_choices, 0)
    start = prefix_mask.sum(-1, keepdim=True)
    positions = start + torch.arange(width, device=engine.device)[None]
    embeds = engine.model.lm.model.embed_tokens(cont)
    hidden, _ = run_lm(engine.model.lm, embeds, torch.cat([prefix_mask, cont_mask], 1),
                       positions, settings, cache=cache)
    results = []
    for q, ts in enumerate(tokens):
        scores = []
        for c, t in enumerate(ts):
            row = q * n_choices + c
            total = float(first_logp[q, t[0]])
            if len(t) > 1:   # the head runs only where a choice token is predicted
                logp = torch.log_softmax(engine.head(hidden[row, : len(t) - 1]), -1)
                total += float(logp.gather(1, torch.tensor(t[1:], device=logp.device)[:, None]).sum())
            scores.append((total, len(t)))
        results.append(scores)
    return results


def score_cloze(engine, prompts, choices_per_q, settings) -> list[dict]:
    out = []
    for scores, choices in zip(choice_log_likelihoods(engine, prompts, choices_per_q, settings),
                               choices_per_q):
        if settings.cloze_normalise == "mean":
            values = [s / n for s, n in scores]
        else:
            values = [s for s, _ in scores]
        out.append({"predicted_idx": int(torch.tensor(values).argmax()),
                    "choice_scores": values, "choice_tokens": [n for _, n in scores],
                    "decode_tokens": 0})
    return out


# ------------------------------------------------------------------------------- generate
_LETTER_PATTERNS = [
    r"^\s*\(?([A-J])\)?(?:[.:)\s]|$)",                        # "B", "B.", "(B)", "B) a kite"
    r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-J])\)?\b",  # "The answer is B"
]


def parse_answer(text: str, choices: list[str]) -> int | None:
    """The chosen index from generated text, or None if it names no single choice."""
    letters = LETTERS[: len(choices)]
    stripped = text.strip()
    for pattern in _LETTER_PATTERNS:
        m = re.search(pattern, stripped, flags=re.IGNORECASE if "answer" in pattern else 0)
        if m and m.group(1).upper() in letters:
            return letters.index(m.group(1).upper())
    lowered = stripped.lower().strip(" .!\"'")
    exact = [i for i, c in enumerate(choices) if c.strip().lower() == lowered]
    if len(exact) == 1:
        return exact[0]
    contained = [i for i, c in enumerate(choices)
                 if re.search(rf"\b{re.escape(c.strip().lower())}\b", lowered)]
    return contained[0] if len(contained) == 1 else None


def score_generate(engine, prompts, choices_per_q, settings) -> list[dict]:
    token_lists = engine.generate(prompts, settings, max_new_tokens=settings.max_new_tokens)
    out = []
    for tokens, choices in zip(token_lists, choices_per_q):
        text = engine.tokenizer.decode(tokens, skip_special_tokens=True)
        idx = parse_answer(text, choices)
        out.append({"predicted_idx": idx, "generated_text": text, "parsed": idx is not None,
                    "decode_tokens": len(tokens)})
    return out


SCORERS = {"letter": score_letter, "cloze": score_cloze, "generate": score_generate}
