"""Small things tests make: images and A-OKVQA-schema parquets."""
import io

import numpy as np
from PIL import Image

from nanovlm_lite.data.aokvqa import write_questions


def png_bytes(width: int, height: int, seed: int = 0, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def make_parquet(path, n: int = 6, corrupt: set[int] = frozenset(), n_choices: int = 4) -> str:
    words = ["red", "blue", "green", "yellow", "circle", "square", "cat", "dog"]
    rows = []
    for i in range(n):
        rows.append({
            "question_id": f"q{i}",
            "question": f"What is shown in picture {i}?",
            "choices": [words[(i + k) % len(words)] for k in range(n_choices)],
            "correct_choice_idx": i % n_choices,
            "direct_answers": [words[i % len(words)]] * 10,
            "difficult_direct_answer": i == 0,
            "rationales": [],
            "image": {"bytes": b"not an image" if i in corrupt
                      else png_bytes(40 + 30 * i, 60 + 10 * (i % 3), seed=i), "path": None},
        })
    write_questions(rows, path)
    return str(path)
