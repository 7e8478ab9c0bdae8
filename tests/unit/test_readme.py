"""The README's usage example runs as written (with this interpreter in place of .venv/bin)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from scenario import ROOT


def usage_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using segmenter", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_usage_example_runs(tmp_path: Path) -> None:
    commands = usage_commands()
    assert len(commands) == 3
    for line in commands:
        words = shlex.split(line)
        out = None
        if ">" in words:
            out = tmp_path / words[words.index(">") + 1]
            words = words[: words.index(">")]
        assert words[0] == ".venv/bin/segmenter"
        if "--rules" not in words and words[1] in ("replay", "backtest"):
            words += ["--rules", str(ROOT / "rules")]
        with open(out, "wb") if out else open(tmp_path / "stdout", "wb") as stdout:
            result = subprocess.run([sys.executable, "-m", "streams.cli", *words[1:]], cwd=tmp_path,
                                    stdout=stdout, stderr=subprocess.PIPE, timeout=120, check=False)
        assert result.returncode == 0, (line, result.stderr.decode()[-2000:])
    assert (tmp_path / "changes.jsonl").stat().st_size > 0
    assert (tmp_path / "backtest" / "segment_sizes.png").exists()
