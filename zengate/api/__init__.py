"""One blueprint per API surface."""
