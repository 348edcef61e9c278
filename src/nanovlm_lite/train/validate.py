"""Validation accuracy during training: letter and cloze scoring with the training forward.

The same protocols as `evaluate.mcq` (letter: the highest of the choices' letter logits
after the MCQ prompt; cloze: the highest mean log-prob of each choice's text as the
assistant's answer after the bare question), computed with gradients off on the model
being trained, with each image's tokens shared by its questions. The pipeline's own
evaluation (evaluate/) is what results report; this is the trainer's progress signal.
"""
from __future__ import annotations

from collections import defaultdict

import torch

from ..evaluate.prompts import letter_token_ids, render
from .data import TrainSet, collate
from .forward import target_logits
from .objectives import answer_ids, letter_template


@torch.no_grad()
def score(model, engine, questions, settings, scoring: str = "cloze", batch_rows: int = 256
          ) -> list[dict]:
    """One record per question: predicted_idx, correct, question_type (if known), and the
    values compared: `choice_scores` (cloze: mean log-prob per choice) or `letter_logits`."""
    was_training = model.training
    model.eval()
    data = TrainSet(questions, engine, settings, "answer")
    tok = engine.tokenizer
    rows, spans = [], []  # spans: (question, first row, n rows)
    by_image = defaultdict(list)
    for i, q in enumerate(questions):
        by_image[data_key(data, q)].append(i)
    order = [i for idxs in by_image.values() for i in idxs]
    for i in order:
        q = questions[i]
        img = data_key(data, q)
        if scoring == "cloze":
            text = render("cloze", q.question)
            spans.append((i, len(rows), len(q.choices)))
            rows.extend((img, text, tuple(answer_ids(tok, c))) for c in q.choices)
        elif scoring == "letter":
            text = render(letter_template(settings), q.question, q.choices)
            spans.append((i, len(rows), 1))
            rows.append((img, text, (letter_token_ids(tok, len(q.choices))[0],)))
        else:
            raise ValueError(f"validation scores letter or cloze, not {scoring!r}")
    scores = []
    for start in range(0, len(rows), batch_rows):
        chunk = rows[start:start + batch_rows]
        scores.extend(_row_scores(model, data, chunk, settings, scoring))
    out = [None] * len(questions)
    for i, first, n in spans:
        q = questions[i]
        if scoring == "cloze":
            values = [scores[first + k][0] / scores[first + k][1] for k in range(n)]
        else:
            letters = letter_token_ids(tok, len(q.choices))
            values = scores[first][2][letters].tolist()
        pred = int(torch.tensor(values).argmax())
        rec = {"question_id": q.question_id, "predicted_idx": pred,
               "correct": pred == q.correct_choice_idx,
               ("choice_scores" if scoring == "cloze" else "letter_logits"): values}
        if "question_type" in q.extra:
            rec["question_type"] = q.extra["question_type"]
        out[i] = rec
    model.train(was_training)
    return out


def data_key(data: TrainSet, q) -> int:
    import hashlib
    return data.index[hashlib.sha1(q.image_bytes).digest()]


def _row_scores(model, data: TrainSet, chunk, settings, scoring):
    """Per row: (sum of target log-probs, target count, raw logits at the first target)."""
    distinct = list(dict.fromkeys(img for img, _, _ in chunk))
    processed = {img: data.processed(img) for img in distinct}
    first_tile, tiles, offset = {}, [], 0
    for img in distinct:
        first_tile[img] = offset
        tiles.append(processed[img].tiles)
        offset += processed[img].n_tiles
    rows, row_tiles = [], []
    for img, text, target in chunk:
        p = processed[img]
        rows.append((data._prompt(data.image_str(p), text) + target, len(target)))
        row_tiles.extend(range(first_tile[img], first_tile[img] + p.n_tiles))
    batch = collate(rows, torch.cat(tiles), row_tiles, data.engine.tokenizer.pad_token_id,
                    [len(t) for t in tiles])
    logits = target_logits(model, batch, settings)
    logp = torch.log_softmax(logits, -1)
    token_logp = logp.gather(1, batch.labels.to(logp.device)[:, None])[:, 0].cpu()
    out, k = [], 0
    for ids, n in rows:
        out.append((float(token_logp[k:k + n].sum()), n, logits[k].cpu()))
        k += n
    return out


def accuracy_by_type(records: list[dict]) -> dict[str, float]:
    """{"overall": acc, "<question_type>": acc, ...} (n in "n_overall", "n_<type>")."""
    groups = defaultdict(list)
    for r in records:
        groups["overall"].append(r["correct"])
        if "question_type" in r:
            groups[r["question_type"]].append(r["correct"])
    out = {}
    for name, values in groups.items():
        out[name] = sum(values) / len(values)
        out[f"n_{name}"] = len(values)
    return out
