"""What runs record about the code they ran."""

import subprocess

from msd_core.provenance import git_revision


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_the_revision_is_dirty_only_for_changes_outside_the_ignored_paths(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "code").mkdir()
    (tmp_path / "results" / "rows.jsonl").write_text("{}\n")
    (tmp_path / "code" / "step.py").write_text("x = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    inside = tmp_path / "code"  # asked from a sub-folder, as msd_core asks from its own
    assert git_revision(inside) == head

    (tmp_path / "results" / "rows.jsonl").write_text("{}\n{}\n")
    assert git_revision(inside) == head + "-dirty"
    assert git_revision(inside, ignore=("results",)) == head

    (tmp_path / "code" / "step.py").write_text("x = 2\n")
    assert git_revision(inside, ignore=("results",)) == head + "-dirty"


def test_outside_git_there_is_no_revision(tmp_path):
    assert git_revision(tmp_path) is None
