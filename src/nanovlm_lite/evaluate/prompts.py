"""Prompt templates: data, not code. A point names one (or gives a literal template) and
the results record the exact text that was sent.

Fields a template may use: {question}, {options} (one "A. choice" per line),
{options_inline} ("A. x B. y ..."), {letters} ("A, B, C or D").
"""
from __future__ import annotations

from ..data.aokvqa import LETTERS  # the loader refuses questions with more choices

TEMPLATES = {
    # MCQ, answered with a letter (letter and generate scoring)
    "default": "{question}\n{options}\nAnswer with the letter.",
    "short": "{question}\n{options_inline}",
    # the seed's two protocols, as far as its README describes them (generate + parse)
    "seed-1": "Question: {question}\nOptions:\n{options}\nAnswer with the letter of the correct option.",
    "seed-2": "{question}\nChoose one: {options_inline}. Reply with {letters} only.",
    # cloze: the question alone; each choice's text is scored as the assistant's answer
    "cloze": "{question}",
    # direct answer
    "da": "{question}\nAnswer the question using a single word or phrase.",
}


def template_text(name_or_template: str) -> str:
    if name_or_template in TEMPLATES:
        return TEMPLATES[name_or_template]
    if "{question}" in name_or_template:
        return name_or_template
    import difflib
    close = difflib.get_close_matches(name_or_template, TEMPLATES, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"prompt {name_or_template!r} is not a template name; {hint}known: "
                     f"{', '.join(sorted(TEMPLATES))} (or a literal template, which contains "
                     f"{{question}})")


def check_template(name_or_template: str) -> None:
    """ValueError unless the template is known (or literal) and renders: a misspelt name,
    an unknown {field} or a stray brace is found before any question is asked."""
    render(name_or_template, "q", ["a", "b"])


def render(name_or_template: str, question: str, choices: list[str] | None = None) -> str:
    choices = choices or []
    letters = LETTERS[: len(choices)]
    fields = {
        "question": question.strip(),
        "options": "\n".join(f"{l}. {c}" for l, c in zip(letters, choices)),
        "options_inline": " ".join(f"{l}. {c}" for l, c in zip(letters, choices)),
        "letters": (", ".join(letters[:-1]) + " or " + letters[-1]) if len(letters) > 1 else letters,
    }
    template = template_text(name_or_template)
    try:
        return template.format(**fields)
    except KeyError as e:
        raise ValueError(f"prompt template {name_or_template!r} uses unknown field {e}; "
                         f"known: {', '.join('{' + f + '}' for f in fields)}") from None
    except (ValueError, IndexError, AttributeError) as e:  # a stray brace, {}, {0}, {question.x}
        raise ValueError(f"prompt template {name_or_template!r} is not a valid format string "
                         f"({e}); write a literal brace as {{{{ or }}}}") from None


def mcq_prompt_name(settings) -> str:
    """The template a point uses: cloze points default to the bare question."""
    if settings.scoring == "cloze" and settings.prompt == "default":
        return "cloze"
    return settings.prompt


def letter_token_ids(tokenizer, n_choices: int) -> list[int]:
    """The token each answer letter starts with; they must be distinct single tokens."""
    ids = []
    for letter in LETTERS[:n_choices]:
        pieces = tokenizer.encode(letter, add_special_tokens=False)
        if len(pieces) != 1:
            raise ValueError(f"the tokenizer splits answer letter {letter!r} into {len(pieces)} "
                             f"tokens; letter scoring needs one token per letter")
        ids.append(pieces[0])
    if len(set(ids)) != len(ids):
        raise ValueError("answer letters share a token id")
    return ids
