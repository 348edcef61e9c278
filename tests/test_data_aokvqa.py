"""The A-OKVQA loader: the hub copy's quirks, clear errors, sharding, round trips."""
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from nanovlm_lite.data.aokvqa import (REQUIRED_COLUMNS, DatasetError, Question, load_questions,
                                      shard, write_questions)


def png_bytes(color=(255, 0, 0), size=(8, 6)):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def hub_like_rows(n=5):
    """Rows as the HF parquet holds them: image struct, direct_answers sometimes a string."""
    rows = []
    for i in range(n):
        rows.append({
            "question_id": f"q{i}",
            "question": f"What is {i}?",
            "choices": ["a", "b", "c", "d"],
            "correct_choice_idx": i % 4,
            "direct_answers": str(["a", "b"] * 5),  # a whole column of strings in one split
            "difficult_direct_answer": i == 3,
            "rationales": ["because"],
            "image": {"bytes": png_bytes(), "path": f"{i}.jpg"},
        })
    return rows


def write_hub_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_load_parses_hub_quirks(tmp_path):
    path = write_hub_parquet(tmp_path / "val.parquet", hub_like_rows())
    qs = load_questions(path)
    assert [q.question_id for q in qs] == ["q0", "q1", "q2", "q3", "q4"]
    assert qs[1].direct_answers == ["a", "b"] * 5          # string holding a Python list
    assert qs[2].correct_choice_idx == 2 and qs[2].answer == "c"
    assert qs[3].difficult_direct_answer is True
    assert qs[0].extra == {"rationales": ["because"]}
    img = qs[0].image()
    assert img.mode == "RGB" and img.size == (8, 6) and img.getpixel((0, 0)) == (255, 0, 0)
    assert [q.question_id for q in load_questions(path, max_samples=2)] == ["q0", "q1"]


def test_null_answers_raw_bytes_and_missing_image(tmp_path):
    rows = hub_like_rows(3)
    rows[0]["correct_choice_idx"] = None   # test split
    for i, r in enumerate(rows):
        r["direct_answers"] = None if i == 1 else ["x"] * 10  # a real list column, with a null
    rows[2]["image"] = None
    for r in rows:
        r.pop("rationales")
    qs = load_questions(write_hub_parquet(tmp_path / "t.parquet", rows))
    assert qs[0].correct_choice_idx is None and qs[0].answer is None
    assert qs[1].direct_answers == [] and qs[0].direct_answers == ["x"] * 10
    assert qs[2].image_bytes is None
    with pytest.raises(DatasetError, match="q2"):
        qs[2].image()
    # raw bytes in the image column are accepted too
    raw = [{**r, "image": png_bytes()} for r in hub_like_rows(2)]
    assert load_questions(write_hub_parquet(tmp_path / "raw.parquet", raw))[1].image().size == (8, 6)


def test_missing_column_names_column_and_file(tmp_path):
    rows = [{k: v for k, v in r.items() if k not in ("choices", "image")} for r in hub_like_rows(2)]
    path = write_hub_parquet(tmp_path / "broken.parquet", rows)
    with pytest.raises(DatasetError) as err:
        load_questions(path)
    msg = str(err.value)
    assert "broken.parquet" in msg and "choices" in msg and "image" in msg
    assert all(col in msg for col in REQUIRED_COLUMNS)  # lists what is required
    assert "question_id" not in msg.split("needs")[0]  # present columns are not called missing


def test_corrupt_image_names_question(tmp_path):
    q = Question("abc-123", "q?", ["a", "b"], 0, ["a"], False, b"not an image at all")
    with pytest.raises(DatasetError, match="abc-123.*cannot be decoded"):
        q.image()
    truncated = Question("trunc-9", "q?", ["a"], 0, [], False, png_bytes()[:40])
    with pytest.raises(DatasetError, match="trunc-9"):
        truncated.image()


def test_shard_partitions_exactly():
    qs = [Question(str(i), "", [], None, [], False, None) for i in range(23)]
    parts = [shard(qs, k, 4) for k in range(4)]
    ids = [q.question_id for p in parts for q in p]
    assert sorted(ids, key=int) == [str(i) for i in range(23)] and len(ids) == 23
    assert [q.question_id for q in parts[1]] == ["1", "5", "9", "13", "17", "21"]
    assert shard(qs, 1, 4) == parts[1]  # deterministic
    assert shard(qs, 0, 1) == qs
    for bad in [(4, 4), (-1, 4), (0, 0), (0, 2.0)]:
        with pytest.raises(ValueError):
            shard(qs, *bad)


def test_write_round_trip_keeps_schema_and_extras(tmp_path):
    src = load_questions(write_hub_parquet(tmp_path / "a.parquet", hub_like_rows(3)))
    src[0].extra["question_type"] = "color"
    out = write_questions(src, tmp_path / "b.parquet")
    schema = pq.read_schema(out)
    assert schema.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert set(REQUIRED_COLUMNS) | {"rationales", "question_type"} <= set(schema.names)
    back = load_questions(out)
    assert [(q.question_id, q.choices, q.correct_choice_idx, q.direct_answers, q.image_bytes)
            for q in back] == [(q.question_id, q.choices, q.correct_choice_idx, q.direct_answers,
                                q.image_bytes) for q in src]
    assert back[0].extra["question_type"] == "color" and back[1].extra["question_type"] is None
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


# ---- malformed rows and empty selections: named at load time, before any work ----------
def _row(i, **changes):
    row = {"question_id": f"q{i}", "question": f"What is {i}?", "choices": ["a", "b", "c"],
           "correct_choice_idx": 0, "direct_answers": ["a"] * 10, "difficult_direct_answer": False,
           "rationales": [], "image": {"bytes": png_bytes(), "path": None}}
    row.update(changes)
    return row


def test_every_malformed_row_is_named_with_its_question_id(tmp_path):
    path = write_questions([_row(0), _row(1, choices=[]), _row(2, choices=list("abcdefghijk")),
                            _row(3, correct_choice_idx=5), _row(4, choices=["only"]),
                            _row(5, question=""), _row(0), _row(6)], tmp_path / "bad.parquet")
    with pytest.raises(DatasetError) as e:
        load_questions(path)
    message = str(e.value)
    assert message.startswith(f"{path}: 6 malformed row(s): ")
    for expected in ["row 1: question 'q1': no choices",
                     "row 2: question 'q2': 11 choices, more than the prompt has answer letters "
                     "(10: ABCDEFGHIJ)",
                     "row 3: question 'q3': correct_choice_idx 5 is out of range for 3 choices",
                     "row 4: question 'q4': only one choice",
                     "row 5: question 'q5': has no question text",
                     "row 6: question 'q0': repeats the question_id of row 0"]:
        assert expected in message
    assert "\n" not in message


def test_empty_file_and_empty_selection_are_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"has no questions \(0 rows\)"):
        load_questions(write_questions([], tmp_path / "empty.parquet"))
    path = write_questions([_row(0), _row(1)], tmp_path / "q.parquet")
    with pytest.raises(DatasetError, match="0 selects no questions"):
        load_questions(path, max_samples=0)
    with pytest.raises(DatasetError, match="an integer >= 1"):
        load_questions(path, max_samples=2.0)
    assert [q.question_id for q in load_questions(path, max_samples=1)] == ["q0"]


def test_a_split_without_answers_loads_as_unanswered(tmp_path):
    path = write_questions([_row(0, correct_choice_idx=None, direct_answers=[])], tmp_path / "t.parquet")
    (q,) = load_questions(path)
    assert q.correct_choice_idx is None and q.answer is None and q.direct_answers == []
