"""Write golden/manifest_<V>.json: the canonical key manifest of each variant.

Run with `just golden`; review the diff before committing. Never edit the JSON by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from cnp_convert.core.manifest import key_manifest
from cnp_convert.core.variants import VARIANTS

GOLDEN_DIR = Path(__file__).resolve().parent


def write_manifests(directory: Path = GOLDEN_DIR) -> list[Path]:
    written = []
    for spec in VARIANTS.values():
        path = directory / f"manifest_{spec.name}.json"
        rows = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in key_manifest(spec).items()]
        path.write_text("{\n" + ",\n".join(rows) + "\n}\n")  # one tensor per line: easy diffs
        written.append(path)
    return written


def main() -> None:
    for path in write_manifests():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
