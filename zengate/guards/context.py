"""The context-window guard: a prompt that cannot fit the chosen model's window is refused at once,
in the words the client acts on, instead of costing an upstream call (and, on a free tier, a
request of its quota); when fallbacks are configured, the models whose window fits are tried
first, in their order.

The prompt is measured with the local estimate (``dialects/tokens.py``), which reads high on
purpose; the guard goes by three quarters of it (:data:`LOW_SIDE`), so it refuses only prompts
that are over the window by any honest count. A body too small to hold that many tokens is not
measured at all: that is every request of a conversation with room left, so the guard costs those
nothing. Images given by URL count 1,600 tokens each in the estimate but few bytes in the body,
so a prompt over its window by images alone can pass to the upstream, which then says so itself.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The share of the (high-reading) estimate the guard counts as the prompt's size.
LOW_SIDE = 0.75


def may_overflow(body_bytes: int, windows: Sequence[int | None]) -> bool:
    """Whether a request body of ``body_bytes`` could hold more tokens than the smallest known window:
    a token is at least one byte of the body, so a smaller body never needs measuring."""
    known = [w for w in windows if w]
    return bool(known) and body_bytes * LOW_SIDE > min(known)


def fitting(windows: Sequence[int | None], estimate: int) -> list[int]:
    """The positions of the models whose window holds the prompt (an unknown window holds any), in order."""
    size = prompt_size(estimate)
    return [i for i, window in enumerate(windows) if not window or size <= window]


def prompt_size(estimate: int) -> int:
    """The tokens the guard counts for a prompt the local estimate puts at ``estimate``."""
    return int(estimate * LOW_SIDE)


def overflow_message(estimate: int, window: int, model: str) -> str:
    """The refusal, in the form Anthropic's API words it (Claude Code compacts on "prompt is too
    long"; OpenAI-style clients get it with ``context_length_exceeded``)."""
    return (f"prompt is too long: {prompt_size(estimate)} tokens > {window} maximum (zengate's estimate for "
            f"{model}; nothing was sent upstream)")
