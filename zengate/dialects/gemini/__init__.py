"""The Gemini API (``generateContent``), as Gemini CLI and Google's SDKs speak it: a client dialect
being built (issue 25). So far: its requests into the internal form (:mod:`.request`)."""
