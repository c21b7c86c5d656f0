"""Between a client-API view and the upstream: routing decides the routes (``routing``, ``catalog``),
``serve`` tries them in order before the first byte, ``relay`` does the socket work and ``adapters``
map a stream's events to the client's bytes; ``records`` keeps what a request did for the log."""
