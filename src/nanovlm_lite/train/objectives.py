"""Training objectives: which prompt a question becomes and which tokens the loss is on.

Each objective trains the model on exactly the prompt a scorer will send, so training
and evaluation never disagree about a template:

- `answer`: the bare question (the `cloze` template); target = the correct choice's text
  as the assistant's answer, then `<|im_end|>`. What `cloze` scoring measures.
- `letter`: the MCQ prompt (the point's template, `default` unless it names another);
  target = the correct answer's letter, then `<|im_end|>`. What `letter` scoring measures.
- `direct`: the direct-answer prompt (the `da` template); target = the most common of the
  ten direct answers, then `<|im_end|>`.
- `answer+letter`: every question gives both an `answer` and a `letter` example.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..evaluate.prompts import letter_token_ids, render

OBJECTIVES = ("answer", "letter", "direct", "answer+letter")


@dataclass(frozen=True)
class Target:
    text: str              # the user text (after the image string)
    ids: tuple[int, ...]   # the assistant tokens the loss is on
    kind: str = "answer"   # answer | letter | direct: what distillation compares (distill.py)
    choices: tuple[int, ...] = ()   # letter: the choices' letter tokens, in choice order


def letter_template(settings) -> str:
    """The MCQ template for the letter objective: the point's, unless it is the bare
    question (cloze points) which has no options to pick a letter from."""
    return "default" if settings.prompt == "cloze" else settings.prompt


def answer_ids(tokenizer, text: str) -> list[int]:
    """How cloze scoring tokenises a choice: its stripped text, no special tokens."""
    return tokenizer.encode(text.strip(), add_special_tokens=False)


def direct_answer(question) -> str:
    answers = [a for a in question.direct_answers if a.strip()]
    if not answers:
        return question.answer
    counts = Counter(answers)
    return max(answers, key=lambda a: (counts[a], -answers.index(a)))  # most common, then first


def targets(question, objective: str, tokenizer, settings) -> list[Target]:
    """The training examples one question gives under `objective`."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}: expected one of {OBJECTIVES}")
    if question.correct_choice_idx is None:
        raise ValueError(f"question {question.question_id!r} has no answer to train on")
    eos = tokenizer.eos_token_id
    out = []
    if objective in ("answer", "answer+letter"):
        out.append(Target(render("cloze", question.question),
                          (*answer_ids(tokenizer, question.answer), eos)))
    if objective in ("letter", "answer+letter"):
        letters = tuple(letter_token_ids(tokenizer, len(question.choices)))
        out.append(Target(render(letter_template(settings), question.question, question.choices),
                          (letters[question.correct_choice_idx], eos), "letter", letters))
    if objective == "direct":
        out.append(Target(render("da", question.question),
                          (*answer_ids(tokenizer, direct_answer(question)), eos), "direct"))
    return out
