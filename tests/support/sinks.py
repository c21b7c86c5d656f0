"""A request-log sink for unit tests: keeps the rows a RequestRecord hands over, in order."""

from __future__ import annotations


class RowSink:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def record(self, row: dict) -> None:
        self.rows.append(row)

    def add_cost(self, request_id: str, created_at, key_id: int | None, cost: float) -> None:
        """A cost reported after the row was handed over: set on the row, as the log writer would."""
        for row in self.rows:
            if row["request_id"] == request_id:
                row["cost"] = cost
