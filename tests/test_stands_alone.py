"""The repository stands alone: no tracked file refers to a path outside the checkout.

People clone the project without whatever lay beside it on the machine it was written on, so a
test, bench, script or doc that reads `../something` or an absolute path next to the checkout
works only there. This test fails on any such reference.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Folders so common that their name alone says nothing about this machine's layout.
COMMON_ROOTS = {"/", "/tmp", "/home", "/root", "/var", "/opt", "/srv", "/usr", "/mnt", "/media"}


def tracked_files(root: Path) -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False, text=True
    )
    if listed.returncode == 0:
        return [root / name for name in listed.stdout.split("\0") if name]
    ignored = {".git", ".venv", "var", "test-artifacts", "__pycache__", ".mypy_cache"}
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not ignored.intersection(path.relative_to(root).parts)
    ]


def forbidden_fragments(root: Path) -> list[str]:
    """What a reference outside `root` looks like: the team's reference folder beside the
    checkout, and any path under the folder that holds the checkout (unless that folder is a
    common one such as /tmp, where the name alone proves nothing)."""
    fragments = [".." + "/shared", "shared/data/" + "gen_products"]
    parent = root.resolve().parent
    if str(parent) not in COMMON_ROOTS:
        fragments.append(f"{parent}/")
        fragments.extend(
            f"../{sibling.name}/" for sibling in parent.iterdir() if sibling.name != root.name
        )
    return fragments


def outside_references(root: Path, files: list[Path]) -> list[str]:
    fragments = forbidden_fragments(root)
    found = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary or deleted in the work tree: nothing to read as text
        for number, line in enumerate(text.splitlines(), start=1):
            for fragment in fragments:
                if fragment in line:
                    found.append(f"{path.relative_to(root)}:{number}: {fragment!r}")
    return found


def test_no_tracked_file_refers_to_a_path_outside_the_repository() -> None:
    files = tracked_files(ROOT)
    assert len(files) > 50, "the file listing found the repository"
    assert outside_references(ROOT, files) == []


def test_the_check_finds_references_outside(tmp_path: Path) -> None:
    checkout = tmp_path / "holder" / "project"
    checkout.mkdir(parents=True)
    (tmp_path / "holder" / "notes").mkdir()
    bad = {
        # Split so that this file does not hold the fragment it looks for.
        "bench.py": 'GENERATOR = ROOT.parent / "shared"\nopen("..' + '/shared/data/x.py")\n',
        "test_a.py": f'PATH = "{tmp_path}/holder/notes/file.txt"\n',
        "run.sh": "cat ../notes/todo.txt\n",
    }
    for name, text in bad.items():
        (checkout / name).write_text(text)
    (checkout / "good.py").write_text('HOME = "./var"\nTMP = "/tmp/pi-bench"\n')
    found = outside_references(checkout, sorted(checkout.iterdir()))
    assert [entry.split(":")[0] for entry in found] == ["bench.py", "run.sh", "test_a.py"]
