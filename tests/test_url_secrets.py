"""No part of a password in a Redis URL ever shows: not in errors, reprs, info, logs or spans."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from redis_server import RedisServer, free_port
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import TTAError, UnsentWritesError
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._urls import check_redis_url, redact_url, scrub
from tta_dev_primitives.testing import capture_spans

# Upper-case letters that no message, host or option name of ours contains, and the
# characters that URL parsers treat specially.
LETTERS = "QZXJKVW"
passwords = st.text(alphabet=LETTERS + "/#?@:%&=;+ .[]", min_size=3, max_size=24).filter(
    lambda pw: any(ch in LETTERS for ch in pw)
)

# Where a password can sit, and (for the error paths) something else wrong with the URL.
TEMPLATES = [
    "redis://{pw}@localhost:6379/0",
    "redis://user:{pw}@localhost:6379/0",
    "redis://:{pw}@localhost:6379/0",
    "rediss://user:{pw}@localhost/0?ssl_cert_reqs=none",
    "redis://localhost:6379/0?password={pw}",
    "redis://localhost:6379/0?socket_timeout=1&password={pw}",
    "redis://localhost:6379/0?password={pw}&socket_timeout=1",
    "redis://user:{pw}@localhost:6379/0?password={pw}",
    "unix://:{pw}@/tmp/redis.sock?db=0",
    "redis://:{pw}@localhost:99999/0",
    "redis://:{pw}@localhost:6379/abc",
    "redis://:{pw}@:6379/0",
    "redis://:{pw}@localhost:port/0",
    "redis://user:{pw}@h1:7000,h2:7001/0",
    "redis://:{pw}@h1:7000,h2:port/0",
    "redis://h1:7000,h2/0?password={pw}",
    "redis://:{pw}@localhost/0?socket_timeout=abc",
    "http://:{pw}@localhost/0",
]


def leaks(password: str, text: str) -> list[str]:
    """The substrings of ``password`` (3 characters or more, with a letter) found in ``text``."""
    return [
        password[i:j]
        for i in range(len(password))
        for j in range(i + 3, len(password) + 1)
        if any(ch in LETTERS for ch in password[i:j]) and password[i:j] in text
    ]


def shown_for(url: str) -> list[str]:
    """Everything the library may show about ``url`` without connecting."""
    texts = [redact_url(url), scrub(f"error near {url}", url)]
    try:
        check_redis_url(url)
    except ValueError as exc:
        texts.append(str(exc))
        texts.append(repr(exc))
        return texts
    backend = RedisBackend(url)
    texts += [repr(backend.describe()), str(backend.describe())]
    memory = MemoryPrimitive(url)
    texts += [repr(memory), str(memory.get_backend_info())]
    return texts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=passwords, template=st.sampled_from(TEMPLATES), encoded=st.booleans())
def test_no_part_of_a_password_is_ever_shown(password: str, template: str, encoded: bool) -> None:
    """Raw or percent-encoded, in any URL position, no 3-character piece of a password shows."""
    secret = quote(password, safe="") if encoded else password
    if template.startswith("redis://{pw}@"):
        # Alone before the '@', text up to a raw ':' is a user name (shown), by URL grammar.
        assume(encoded or ":" not in password)
    url = template.format(pw=secret)
    for text in shown_for(url):
        assert not leaks(password, text), (url, text)
        if encoded:
            assert not leaks(secret, text), (url, text)


@pytest.mark.parametrize("password", ["hun/ter2QZX", "hun#ter2QZX", "hun?ter2QZX", "a@b/c#dQZX"])
def test_raw_url_characters_in_a_password_are_refused_without_showing_it(password: str) -> None:
    """A raw '/', '#' or '?' in a password is refused with advice, and no part of it shows."""
    with pytest.raises(ValueError, match="percent-encode") as info:
        MemoryPrimitive(f"redis://:{password}@localhost:6379/0")
    assert isinstance(info.value, TTAError)
    assert not leaks(password, str(info.value))


@pytest.mark.redis
async def test_connection_errors_logs_and_spans_hide_the_password(
    redis_server_factory: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    """Wrong password and unreachable server: no piece of the password in errors, logs, spans."""
    password = "QZX/J#K?V@W:%&=;"
    server = redis_server_factory(password="right-one")
    urls = [
        f"redis://:{quote(password, safe='')}@127.0.0.1:{server.port}/0",
        f"redis://:{quote(password, safe='')}@127.0.0.1:{free_port()}/0",
        f"redis://127.0.0.1:{server.port}/0?password={quote(password, safe='')}",
    ]
    caplog.set_level(logging.DEBUG)
    for url in urls:
        with capture_spans() as spans:
            memory = MemoryPrimitive(url, redis_timeout=0.5)
            async with asyncio.timeout(30):
                await memory.add("u:s:k", {"v": 1})
                assert await memory.get("u:s:k") == {"v": 1}  # served in-process
            info = memory.get_backend_info()
            with pytest.raises(UnsentWritesError) as lost:
                await memory.aclose()
        texts = [str(info), repr(memory), caplog.text, str(lost.value)]
        for span in spans:
            texts.append(str(dict(span.attributes or {})))
            texts += [str(dict(event.attributes or {})) for event in span.events]
        for text in texts:
            assert not leaks(password, text), (url, text)
            assert not leaks(quote(password, safe=""), text), (url, text)


# Pieces a password may be built of, among them what a URL parser reads as a query password.
PIECES = ["QZX", "JKV", ";password=", "&password=", "?password=", "password=", "@", ":", "%",
          "%4", "%41", "/", "#", "?", "=", "&", ";", " "]  # fmt: skip
tricky_passwords = (
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=8)
    .map("".join)
    .filter(lambda pw: any(ch in LETTERS for ch in pw))
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=tricky_passwords, template=st.sampled_from(TEMPLATES), encoded=st.booleans())
def test_a_password_holding_query_syntax_is_never_shown(
    password: str, template: str, encoded: bool
) -> None:
    """``;password=``, ``&password=``, ``@``, ``:`` or ``%`` in a password: no piece of it shows."""
    secret = quote(password, safe="") if encoded else password
    if template.startswith("redis://{pw}@"):
        assume(encoded or ":" not in password)  # a raw ':' there ends a user name (shown)
    url = template.format(pw=secret)
    for text in shown_for(url):
        assert not leaks(password, text), (url, text)
        if encoded:
            assert not leaks(secret, text), (url, text)


@pytest.mark.parametrize(
    "password", ["abcQZX;password=xyz", "abcQZX&password=xyz", "QZX;password=@:%JKV"]
)
def test_a_query_password_inside_the_user_info_is_not_quoted(password: str) -> None:
    """The issue's case: the error used to quote the password up to its ``;password=``."""
    url = f"redis://user:{password}@localhost:6379/0"
    for text in shown_for(url):
        assert "QZX" not in text, text
        assert "abc" not in text, text
