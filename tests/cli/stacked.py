"""Reading the CLI's stacked tables (a table wider than the page prints one block per row)."""

from __future__ import annotations

import re


def stacked_rows(text: str, first_header: str) -> list[dict[str, str]]:
    """Every block that starts with first_header, as {header: value}."""
    rows: list[dict[str, str]] = []
    for line in text.splitlines():
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        if len(parts) != 2:
            continue
        header, value = parts
        if header == first_header:
            rows.append({})
        if rows:
            rows[-1].setdefault(header, value)
    return rows
