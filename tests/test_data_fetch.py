"""Dataset fetch, offline: a fake Hugging Face cache stands in for the hub (see DESIGN.md)."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nanovlm_lite.data.aokvqa import DatasetError, load_questions, write_questions
from nanovlm_lite.data.fetch import fetch_dataset
from nanovlm_lite.hub import HubUnreachableError

REV = "0123456789abcdef0123456789abcdef01234567"
REPO = "FakeOrg/A-OKVQA"


def rows(prefix, n):
    return [{"question_id": f"{prefix}{i}", "question": "what?", "choices": ["a", "b", "c", "d"],
             "correct_choice_idx": i % 4, "direct_answers": ["a"] * 10,
             "difficult_direct_answer": False, "image": b"\x89PNG fake"} for i in range(n)]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A cache laid out as huggingface_hub writes it, with the hub switched off."""
    cache = tmp_path / "hf-cache"
    repo = cache / "datasets--FakeOrg--A-OKVQA"
    data = repo / "snapshots" / REV / "data"
    data.mkdir(parents=True)
    write_questions(rows("v", 3), data / "validation-00000-of-00002-aaaa.parquet")
    write_questions(rows("w", 2), data / "validation-00001-of-00002-bbbb.parquet")
    write_questions(rows("t", 4), data / "train-00000-of-00001-cccc.parquet")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REV)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_fetch_by_repo_id_from_cache(hub_cache, tmp_path):
    out = fetch_dataset(REPO, "validation", tmp_path / "out" / "val.parquet", expected_rows=5)
    ids = [q.question_id for q in load_questions(out)]
    assert ids == ["v0", "v1", "v2", "w0", "w1"]  # shards concatenated in order, train left out
    train = fetch_dataset(REPO, "train", tmp_path / "train.parquet", revision=REV)
    assert len(load_questions(train)) == 4


def test_unknown_repo_offline_is_readable(hub_cache, tmp_path):
    out = tmp_path / "nope.parquet"
    with pytest.raises(HubUnreachableError) as err:
        fetch_dataset("NoSuchOrg/nothing", "validation", out)
    msg = str(err.value)
    assert "NoSuchOrg/nothing" in msg and "make demo" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no library trace
    assert not out.exists()


def test_wrong_row_count_fails_and_writes_nothing(hub_cache, tmp_path):
    out = tmp_path / "val.parquet"
    with pytest.raises(DatasetError, match="expected 1145 rows, got 5"):
        fetch_dataset(REPO, "validation", out, expected_rows=1145)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_missing_split_is_named(hub_cache, tmp_path):
    with pytest.raises(DatasetError, match="split 'test'"):
        fetch_dataset(REPO, "test", tmp_path / "test.parquet")


def test_local_parquet_and_folder(tmp_path):
    src = write_questions(rows("x", 3), tmp_path / "src" / "val.parquet")
    out = fetch_dataset(str(src), "validation", tmp_path / "a.parquet", expected_rows=3)
    assert [q.question_id for q in load_questions(out)] == ["x0", "x1", "x2"]
    write_questions(rows("y", 2), tmp_path / "src" / "train.parquet")
    out = fetch_dataset(str(tmp_path / "src"), "train", tmp_path / "b.parquet")
    assert [q.question_id for q in load_questions(out)] == ["y0", "y1"]


def test_local_file_without_schema_is_rejected(tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"question_id": ["1"], "question": ["q"]}), bad)
    with pytest.raises(DatasetError, match="bad.parquet.*missing column.*choices"):
        fetch_dataset(str(bad), "validation", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_outputs_written_through_temp_files_are_readable_like_any_other(hub_cache, tmp_path,
                                                                       fixture_dir):
    """mkstemp and safetensors write 0600; moved into place, a fetched parquet or a saved
    checkpoint must have the umask's usual mode, or others on a shared machine can't read it."""
    import os

    import nanovlm_lite
    from nanovlm_lite.model.checkpoint import save_upstream_checkpoint
    old = os.umask(0o022)
    try:
        out = fetch_dataset(REPO, "validation", tmp_path / "val.parquet")
        model_dir = save_upstream_checkpoint(nanovlm_lite.load(str(fixture_dir)).model,
                                             tmp_path / "ckpt")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    want = plain.stat().st_mode & 0o777
    assert want == 0o644
    assert out.stat().st_mode & 0o777 == want
    assert (model_dir / "model.safetensors").stat().st_mode & 0o777 == want


def test_the_rehearsal_dataset_stand_in_fetches_as_the_hub_copy_would(tmp_path, monkeypatch):
    """tests/standins' A-OKVQA: hub layout (train in two shards), COCO-sized JPEGs with one
    greyscale, direct answers as a string of a Python list, a test split without answers."""
    from standins.dataset import DATASET_ID, add_dataset
    cache = tmp_path / "hub"
    rows = add_dataset(cache, n_validation=4, n_train=6, n_test=2)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files = sorted(p.name for p in cache.rglob("*.parquet"))
    assert [f.split("-")[0] for f in files] == ["test", "train", "train", "validation"]
    val = load_questions(fetch_dataset(DATASET_ID, "validation", tmp_path / "v.parquet",
                                       expected_rows=rows["validation"]))
    assert [q.image().size for q in val] == [(640, 480), (500, 375), (427, 640), (640, 427)]
    assert val[3].image(mode=None).mode == "L" and len(val[0].direct_answers) == 10
    assert val[0].image(mode=None).format == "JPEG"
    train = fetch_dataset(DATASET_ID, "train", tmp_path / "t.parquet", expected_rows=6)
    assert len(load_questions(train)) == 6
    test = load_questions(fetch_dataset(DATASET_ID, "test", tmp_path / "test.parquet"))
    assert all(q.correct_choice_idx is None for q in test)
