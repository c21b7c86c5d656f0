"""The client-API views: one blueprint per API a client speaks (OpenAI chat, Anthropic Messages),
each reading like the steps of ``common``: begin the record, authenticate, read the body, serve."""
