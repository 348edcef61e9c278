"""clone_upstream through a local repository by file:// URL: pin, wrong pin, idempotence."""
import subprocess

import pytest

from nanovlm_lite.upstream import UpstreamError, clone_upstream


def git(*args, cwd):
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def origin(tmp_path):
    """A repository with two commits; returns (file:// url, first commit, second commit)."""
    repo = tmp_path / "origin"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    commits = []
    for i in (1, 2):
        (repo / "model.py").write_text(f"VERSION = {i}\n")
        git("add", "model.py", cwd=repo)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", f"v{i}",
            cwd=repo)
        commits.append(git("rev-parse", "HEAD", cwd=repo))
    return repo.as_uri(), commits[0], commits[1]


def test_clone_checks_out_the_pinned_commit(origin, tmp_path):
    url, first, _ = origin
    dest = clone_upstream(url, first, tmp_path / "resources" / "nanoVLM")
    assert git("rev-parse", "HEAD", cwd=dest) == first
    assert (dest / "model.py").read_text() == "VERSION = 1\n"
    assert not [p for p in dest.parent.iterdir() if "partial" in p.name]


def test_second_run_does_nothing(origin, tmp_path):
    url, first, _ = origin
    dest = clone_upstream(url, first, tmp_path / "nanoVLM")
    marker = dest / "untracked-marker"
    marker.write_text("kept")
    assert clone_upstream(url, first, dest) == dest
    assert marker.read_text() == "kept"


def test_unknown_commit_fails_clearly_and_leaves_nothing(origin, tmp_path):
    url, _, _ = origin
    dest = tmp_path / "nanoVLM"
    with pytest.raises(UpstreamError, match="0123456789" * 4):
        clone_upstream(url, "0123456789" * 4, dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "origin"]


def test_short_pin_is_not_taken_for_the_full_commit(origin, tmp_path):
    url, first, _ = origin
    with pytest.raises(UpstreamError, match=f"HEAD is {first}"):
        clone_upstream(url, first[:7], tmp_path / "nanoVLM")


def test_existing_checkout_at_another_commit_is_an_error(origin, tmp_path):
    url, first, second = origin
    dest = clone_upstream(url, first, tmp_path / "nanoVLM")
    with pytest.raises(UpstreamError, match=f"{first}.*{second}"):
        clone_upstream(url, second, dest)


def test_unreachable_url_names_it_and_the_offline_demo(tmp_path):
    url = (tmp_path / "no-such-repo").as_uri()
    with pytest.raises(UpstreamError, match="(?s)could not clone .*no-such-repo.*demo"):
        clone_upstream(url, "0" * 40, tmp_path / "nanoVLM")


def test_a_failed_clone_keeps_every_line_git_wrote(tmp_path):
    """git says what failed on one line and sums up on another (e.g. `remote: fatal: unable
    to read <blob>` then `fatal: early EOF`): both are in the error, not only the last."""
    url = (tmp_path / "no-such-repo").as_uri()
    proc = subprocess.run(["git", "clone", "--quiet", "--no-checkout", url, str(tmp_path / "x")],
                          capture_output=True, text=True)
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) >= 2  # git's own message for a missing repository has two
    with pytest.raises(UpstreamError) as err:
        clone_upstream(url, "0" * 40, tmp_path / "nanoVLM")
    for line in lines:
        assert f"git: {line}" in str(err.value)
