from zengate.dialects.sse import SSEParser, encode_data, encode_event, parse_stream


def test_events_split_anywhere_are_reassembled():
    wire = b'event: message_start\ndata: {"a":1}\n\n: keep-alive comment\n\ndata: {"b":\ndata: 2}\n\ndata: [DONE]\n\n'
    for size in (1, 2, 3, 7, len(wire)):
        chunks = [wire[i:i + size] for i in range(0, len(wire), size)]
        events = list(parse_stream(chunks))
        assert [(e.event, e.data) for e in events] == [
            ("message_start", '{"a":1}'), (None, '{"b":\n2}'), (None, "[DONE]")]


def test_crlf_line_endings_and_no_space_after_colon():
    events = SSEParser().feed(b"data:{\"x\":1}\r\n\r\nevent:ping\r\ndata:{}\r\n\r\n")
    assert [(e.event, e.data) for e in events] == [(None, '{"x":1}'), ("ping", "{}")]


def test_trailing_event_without_blank_line_is_kept():
    parser = SSEParser()
    assert parser.feed(b'data: {"last": true}') == []
    assert [e.data for e in parser.finish()] == ['{"last": true}']


def test_raw_keeps_the_exact_bytes():
    [event] = SSEParser().feed(b'data: {"a": 1}\n\n')
    assert event.raw == b'data: {"a": 1}\n\n'


def test_encoders():
    assert encode_data({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert encode_data("[DONE]") == b"data: [DONE]\n\n"
    assert encode_event("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
