"""Launchers: ``python -m zengate claude|codex|gemini`` start a coding agent's own CLI pointed at
a running gateway (common.py finds the gateway and the binary; one module per client)."""
