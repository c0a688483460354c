"""AnswerCache: least recently used first out, bounded by the bytes it holds."""

from __future__ import annotations

from service.api.answers import AnswerCache


def test_the_least_recently_used_answers_leave_first_once_the_bytes_are_spent() -> None:
    cache = AnswerCache(max_bytes=100)
    cache.put("a", b"x" * 25)
    cache.put("b", b"y" * 25)
    cache.put("c", b"z" * 25)
    assert cache.get("a") == b"x" * 25  # a is now the most recently used
    cache.put("d", b"w" * 25)
    cache.put("e", b"v" * 25)  # 125 bytes: b, the least recently used, leaves
    assert [cache.get(k) is not None for k in "abcde"] == [True, False, True, True, True]


def test_replacing_an_answer_counts_its_bytes_once() -> None:
    cache = AnswerCache(max_bytes=100)
    for _ in range(10):
        cache.put("a", b"x" * 25)
    cache.put("b", b"y" * 25)
    cache.put("c", b"z" * 25)
    cache.put("d", b"w" * 25)
    assert all(cache.get(k) is not None for k in "abcd")


def test_an_answer_over_a_quarter_of_the_bound_is_not_kept() -> None:
    cache = AnswerCache(max_bytes=100)
    cache.put("small", b"s")
    cache.put("huge", b"h" * 26)
    assert cache.get("huge") is None and cache.get("small") == b"s"
