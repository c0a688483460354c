"""The README stands alone and says what its own first-sweep block shows.

The block is printed by scripts/first_sweep_output.py and held to a real run by
tests/service/cli/test_first_sweep.py; here the sentences that answer the three questions are held
to that block, and every file the README links or shows is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def first_sweep_rows() -> dict[tuple[str, str], list[str]]:
    """lr, arm, runs, diverged, rate, [interval], converged, median steps: each row, by (lr, arm)."""
    section = README.split("### Your first sweep", 1)[1]
    block = re.search(r"```\n(lr .*?)```", section, re.DOTALL)
    assert block, "no output block under 'Your first sweep'"
    rows = [line.split() for line in block.group(1).splitlines() if re.match(r"\d", line)]
    return {(row[0], row[1]): row for row in rows}


def test_the_three_answers_say_what_the_table_shows() -> None:
    rows = first_sweep_rows()
    unclipped = {lr: row for (lr, arm), row in rows.items() if arm == "none"}
    clipped = {lr: row for (lr, arm), row in rows.items() if arm != "none"}
    how_often = re.search(
        r"Without clipping, (\d+) of (\d+) seeds at lr ([\d.]+), (\d+)% at ([\d.]+), all at ([\d.]+)\.", README)
    assert how_often, "the 'How often does it blow up?' sentence changed shape"
    diverged, seeds, lr_a, percent, lr_b, lr_all = how_often.groups()
    assert (unclipped[lr_a][3], unclipped[lr_a][2]) == (diverged, f"{seeds}/{seeds}")
    assert unclipped[lr_b][4] == f"{percent}%"
    assert unclipped[lr_all][3] == unclipped[lr_all][2].split("/")[0]  # every seed diverged

    assert "No clipped seed diverges at any rate." in README
    assert all(row[3] == "0" for row in clipped.values())

    faster = re.search(r"is ([\d.]+) with clipping and ([\d.]+) without; .*? in (\d+) steps instead of (\d+)\.",
                       README, re.DOTALL)
    assert faster, "the 'How much faster?' sentence changed shape"
    high, low, clipped_steps, unclipped_steps = faster.groups()
    section = README.split("### Your first sweep", 1)[1]
    headline = next(line for line in section.splitlines() if "highest stable lr" in line)
    assert f"highest stable lr {high} vs {low}" in headline
    assert clipped[high][-1] == clipped_steps and unclipped[low][-1] == unclipped_steps


def test_the_readme_names_only_what_the_repository_has() -> None:
    assert "../shared" not in README
    for target in re.findall(r"\]\(((?!https?://)[^)#]+)\)", README):
        assert (ROOT / target).exists(), f"the README links {target}, which the repository does not have"
    for image in re.findall(r"!\[[^\]]+\]\(([^)]+)\)", README):
        assert image.startswith("docs/images/") and (ROOT / image).stat().st_size > 0, image
