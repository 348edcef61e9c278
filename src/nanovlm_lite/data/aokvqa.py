"""A-OKVQA questions: the parquet schema, a loader that tolerates the hub copy's quirks,
sharding for parallel evaluation, and a writer (for tests and the demo dataset).

The hub copy (HuggingFaceM4/A-OKVQA) stores `image` as a struct {bytes, path} and sometimes
`direct_answers` as a string holding a Python list; the test split has no answers. The loader
normalises all of that into plain `Question` objects so the rest of the code never sees it.
"""
from __future__ import annotations

import ast
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ..files import readable

REQUIRED_COLUMNS = ("question_id", "question", "choices", "correct_choice_idx",
                    "direct_answers", "difficult_direct_answer", "image")
OPTIONAL_COLUMNS = ("rationales",)

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
SCHEMA_FIELDS = [
    ("question_id", pa.string()),
    ("question", pa.string()),
    ("choices", pa.list_(pa.string())),
    ("correct_choice_idx", pa.int64()),
    ("direct_answers", pa.list_(pa.string())),
    ("difficult_direct_answer", pa.bool_()),
    ("rationales", pa.list_(pa.string())),
    ("image", IMAGE_TYPE),
]


# the answer letters a prompt can offer (evaluate/prompts.py uses the same)
LETTERS = "ABCDEFGHIJ"
MAX_CHOICES = len(LETTERS)


class DatasetError(ValueError):
    """A dataset file or row does not match the A-OKVQA schema."""


@dataclass
class Question:
    question_id: str
    question: str
    choices: list[str]
    correct_choice_idx: int | None
    direct_answers: list[str]
    difficult_direct_answer: bool
    image_bytes: bytes | None = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)  # rationales, question_type, ...

    @property
    def answer(self) -> str | None:
        """The correct multiple-choice string, or None where the split has no answers."""
        if self.correct_choice_idx is None:
            return None
        return self.choices[self.correct_choice_idx]

    def image(self, mode: str | None = "RGB"):
        """Decode the image; `mode=None` keeps PIL's mode as stored."""
        from PIL import Image

        if self.image_bytes is None:
            raise DatasetError(f"question {self.question_id!r}: has no image bytes")
        try:
            img = Image.open(io.BytesIO(self.image_bytes))
            img.load()
        except Exception as exc:  # PIL raises several types for bad data
            raise DatasetError(f"question {self.question_id!r}: image bytes cannot be decoded "
                               f"as an image ({type(exc).__name__}: {exc})") from None
        if mode is not None and img.mode != mode:
            img = img.convert(mode)
        return img


def check_columns(columns: Iterable[str], where: str | os.PathLike) -> None:
    """Raise DatasetError naming `where` and the missing columns if any are absent."""
    missing = [c for c in REQUIRED_COLUMNS if c not in set(columns)]
    if missing:
        raise DatasetError(f"{where}: missing column(s) {', '.join(missing)}; an A-OKVQA parquet "
                           f"needs {', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)})")


def check_parquet(path: str | os.PathLike) -> int:
    """Check a parquet file's columns without reading its data; returns its row count."""
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot be read as parquet ({type(exc).__name__}: {exc})") from None
    check_columns(pf.schema_arrow.names, path)
    return pf.metadata.num_rows


def _as_str_list(value: Any, field_name: str, qid: str) -> list[str]:
    """A list of strings from a list, numpy array, string holding a Python list, or None."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise DatasetError(f"question {qid!r}: field {field_name!r} is a string that is not a "
                               f"Python list: {text[:80]!r}") from None
        if isinstance(value, str):
            return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        raise DatasetError(f"question {qid!r}: field {field_name!r} should be a list of strings, "
                           f"got {type(value).__name__}") from None


def _as_image_bytes(value: Any, qid: str) -> bytes | None:
    """Image bytes from the hub's {bytes, path} struct, raw bytes, or None."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        data = value.get("bytes")
        if data is None and value.get("path") and Path(value["path"]).is_file():
            data = Path(value["path"]).read_bytes()
        return bytes(data) if data is not None else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise DatasetError(f"question {qid!r}: field 'image' should be a {{bytes, path}} struct or bytes, "
                       f"got {type(value).__name__}")


def question_from_row(row: Mapping[str, Any]) -> Question:
    """One normalised Question from a row dict in the A-OKVQA schema."""
    if row["question_id"] is None or not str(row["question_id"]).strip():
        raise DatasetError(f"a row without a question_id (question {row.get('question')!r})")
    qid = str(row["question_id"])
    idx = row["correct_choice_idx"]
    try:
        idx = None if idx is None or idx != idx else int(idx)  # idx != idx: NaN from pandas
    except (TypeError, ValueError):
        raise DatasetError(f"question {qid!r}: correct_choice_idx should be an integer or null, "
                           f"got {idx!r}") from None
    if row["question"] is None or not str(row["question"]).strip():
        raise DatasetError(f"question {qid!r}: has no question text")
    choices = _as_str_list(row["choices"], "choices", qid)
    if len(choices) < 2:
        raise DatasetError(f"question {qid!r}: {'no choices' if not choices else 'only one choice'}"
                           f" (a multiple-choice question needs at least 2)")
    if len(choices) > MAX_CHOICES:
        raise DatasetError(f"question {qid!r}: {len(choices)} choices, more than the prompt has "
                           f"answer letters ({MAX_CHOICES}: {LETTERS})")
    if idx is not None and not 0 <= idx < len(choices):
        raise DatasetError(f"question {qid!r}: correct_choice_idx {idx} is out of range for "
                           f"{len(choices)} choices")
    extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS}
    if "rationales" in extra:
        extra["rationales"] = _as_str_list(extra["rationales"], "rationales", qid)
    return Question(
        question_id=qid,
        question=str(row["question"]),
        choices=choices,
        correct_choice_idx=idx,
        direct_answers=_as_str_list(row["direct_answers"], "direct_answers", qid),
        difficult_direct_answer=bool(row["difficult_direct_answer"]),
        image_bytes=_as_image_bytes(row["image"], qid),
        extra=extra,
    )


def load_questions(path: str | os.PathLike, max_samples: int | None = None) -> list[Question]:
    """Read an A-OKVQA parquet in file order; `max_samples` keeps the first N questions.
    Every row is checked before anything else runs: malformed rows (no choices, more than
    the prompt has letters, an answer index out of range, a repeated question_id, ...) are
    all named in one DatasetError, and a selection with no questions is an error too."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    n_rows = check_parquet(path)
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, int)
                                    or max_samples < 1):
        raise DatasetError(f"max_samples must be an integer >= 1 or None (all), got {max_samples!r}"
                           + (": 0 selects no questions" if max_samples == 0 else ""))
    if n_rows == 0:
        raise DatasetError(f"{path}: has no questions (0 rows)")
    table = pq.read_table(path)
    if max_samples is not None and max_samples < n_rows:
        table = table.slice(0, max_samples)
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    rows = ({name: values[i] for name, values in columns.items()} for i in range(table.num_rows))
    questions, problems, seen = [], [], {}
    for n, row in enumerate(rows):
        try:
            q = question_from_row(row)
        except DatasetError as e:
            problems.append(f"row {n}: {e}")
            continue
        if q.question_id in seen:
            problems.append(f"row {n}: question {q.question_id!r}: repeats the question_id of "
                            f"row {seen[q.question_id]}")
            continue
        seen[q.question_id] = n
        questions.append(q)
    if problems:
        shown = "; ".join(problems[:20]) + (f"; ... and {len(problems) - 20} more"
                                            if len(problems) > 20 else "")
        raise DatasetError(f"{path}: {len(problems)} malformed row(s): {shown}")
    return questions


def shard(questions: Sequence[Question], shard_index: int, n_shards: int) -> list[Question]:
    """Questions whose position % n_shards == shard_index: disjoint, covering, deterministic."""
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"n_shards must be an integer >= 1, got {n_shards!r}")
    if isinstance(shard_index, bool) or not isinstance(shard_index, int) or not 0 <= shard_index < n_shards:
        raise ValueError(f"shard_index must be an integer in [0, {n_shards}), got {shard_index!r}")
    return list(questions[shard_index::n_shards])


def _to_row(item: Question | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(item, Question):
        row = {"question_id": item.question_id, "question": item.question, "choices": item.choices,
               "correct_choice_idx": item.correct_choice_idx, "direct_answers": item.direct_answers,
               "difficult_direct_answer": item.difficult_direct_answer, "image": item.image_bytes}
        row.update(item.extra)
    else:
        row = dict(item)
        check_columns(row.keys(), f"row {row.get('question_id', '?')!r}")
    image = row["image"]
    if image is None or isinstance(image, Mapping):
        pass
    elif isinstance(image, (bytes, bytearray, memoryview)):
        row["image"] = {"bytes": bytes(image), "path": None}
    else:
        raise DatasetError(f"row {row['question_id']!r}: 'image' should be bytes, a {{bytes, path}} "
                           f"dict or None, got {type(image).__name__}")
    row.setdefault("rationales", [])
    return row


def write_questions(questions_or_rows: Iterable[Question | Mapping[str, Any]],
                    path: str | os.PathLike) -> Path:
    """Write an A-OKVQA-schema parquet atomically (image as a {bytes, path} struct)."""
    rows = [_to_row(item) for item in questions_or_rows]
    known = [name for name, _ in SCHEMA_FIELDS]
    extras: list[str] = []
    for row in rows:
        extras += [k for k in row if k not in known and k not in extras]
    arrays, fields = [], []
    for name, typ in SCHEMA_FIELDS:
        arrays.append(pa.array([r[name] for r in rows], type=typ))
        fields.append(pa.field(name, typ))
    for name in extras:
        arr = pa.array([r.get(name) for r in rows])
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        readable(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
