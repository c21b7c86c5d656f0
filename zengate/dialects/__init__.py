"""Wire formats and translations between them: pure functions, no Flask, no I/O."""
