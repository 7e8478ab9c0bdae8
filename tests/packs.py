"""Rule packs the deployment tests put live, beside the default one (``rules/``)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

NEW_SEGMENT = '''name = "pricing_lurker"
version = 1
description = "Two or more views of the pricing page in the last 7 days."
when = "windows.pricing_views_7d_new >= 2"
'''
NEW_WINDOW = '''
[windows.pricing_views_7d_new]
description = "pricing page views in the last 7 days (a window v1 does not keep)"
events = ["page_view"]
where = 'page_type == "pricing"'
over = "7d"
'''


def pack_v2(tmp_path: Path) -> Path:
    """Version 2 of the default pack: category_affinity (one segment per category) removed, repeat_customer at 3 orders
    (its version raised), and a new segment over a new 7-day window."""
    folder = tmp_path / "rules-v2"
    shutil.copytree(ROOT / "rules", folder, ignore=shutil.ignore_patterns("tests", "templates"))
    (folder / "category_affinity.toml").unlink()
    repeat = folder / "repeat_customer.toml"
    repeat.write_text(repeat.read_text().replace("version = 1", "version = 2")
                      .replace('when = "orders >= 2"', 'when = "orders >= 3"'))
    (folder / "pricing_lurker.toml").write_text(NEW_SEGMENT)
    pack = folder / "pack.toml"
    pack.write_text(pack.read_text().replace('version = "1"', 'version = "2"') + NEW_WINDOW)
    return folder
