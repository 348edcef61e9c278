"""Direct-answer scoring: greedy short answer, VQA answer normalisation, and the A-OKVQA
accuracy min(1, matches / 3) over questions whose `difficult_direct_answer` is false."""
from __future__ import annotations

import re

_CONTRACTIONS = {"dont": "don't", "doesnt": "doesn't", "isnt": "isn't", "arent": "aren't",
                 "cant": "can't", "wont": "won't", "didnt": "didn't", "wasnt": "wasn't",
                 "werent": "weren't", "hasnt": "hasn't", "havent": "haven't", "im": "i'm",
                 "ive": "i've", "youre": "you're", "theyre": "they're", "thats": "that's",
                 "whats": "what's", "shouldnt": "shouldn't", "couldnt": "couldn't",
                 "wouldnt": "wouldn't", "its": "it's", "lets": "let's"}
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
            "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$~|:]")
_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")
_COMMA_NUMBER = re.compile(r"(\d)(,)(\d)")


def normalise_answer(answer: str) -> str:
    """The standard VQA evaluation normalisation: lower case, punctuation, number words to
    digits, articles dropped, common contractions restored."""
    text = answer.replace("\n", " ").replace("\t", " ").strip().lower()
    text = _COMMA_NUMBER.sub(r"\1\3", text)
    text = _PUNCT.sub(" ", text)
    text = _PERIOD.sub("", text)
    words = []
    for word in text.split():
        word = _NUMBERS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def direct_answer_accuracy(prediction: str, direct_answers: list[str]) -> float:
    pred = normalise_answer(prediction)
    matches = sum(pred == normalise_answer(a) for a in direct_answers)
    return min(1.0, matches / 3.0)


def score_direct(engine, prompts, settings) -> list[dict]:
    token_lists = engine.generate(prompts, settings, max_new_tokens=settings.max_new_tokens)
    out = []
    for tokens in token_lists:
        text = engine.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        out.append({"direct_answer": text, "decode_tokens": len(tokens)})
    return out
