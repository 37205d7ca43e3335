"""The documentation's links between files lead somewhere: a moved or renamed file breaks a test, not a reader."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target)


def markdown_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / name for name in listed.stdout.split()]


def local_targets(page: Path) -> list[str]:
    """The link targets of a page that name a file of the repository (not a web page, not an anchor of itself)."""
    targets = (match.group(1) for match in LINK.finditer(page.read_text()))
    return [target.split("#")[0] for target in targets if not re.match(r"[a-z]+:|#", target)]


def test_every_link_between_the_repositorys_files_leads_to_one():
    pages = markdown_files()
    assert ROOT / "README.md" in pages
    broken = [
        f"{page.relative_to(ROOT)} → {target}"
        for page in pages
        for target in local_targets(page)
        if not (page.parent / target).exists()
    ]
    assert broken == []
