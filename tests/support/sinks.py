"""A request-log sink for unit tests: keeps the rows a RequestRecord hands over, in order."""

from __future__ import annotations


class RowSink:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def record(self, row: dict) -> None:
        self.rows.append(row)
