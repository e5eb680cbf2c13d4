from __future__ import annotations

from pydantic import SecretStr

from app.apikeys.hashing import derive_pepper, generate_key, hash_key
from app.testing import isolated_settings
from tests.conftest import TEST_SECRET, make_settings

URL = "sqlite+aiosqlite://"


def test_generate_key_twice_gives_distinct_high_entropy_keys() -> None:
    keys = {generate_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(k.startswith("sk-") and len(k) == 46 for k in keys)


def test_derive_pepper_without_setting_depends_on_secret_key_only() -> None:
    one = derive_pepper(make_settings(URL))
    same = derive_pepper(make_settings(URL))
    other = derive_pepper(isolated_settings(URL, TEST_SECRET + "x"))
    assert one == same != other
    assert TEST_SECRET.encode() not in one  # derived, not the JWT key itself


def test_derive_pepper_with_setting_ignores_secret_key() -> None:
    pepper = SecretStr("a-separate-pepper-of-sufficient-length")
    one = derive_pepper(make_settings(URL, api_key_pepper=pepper))
    other = derive_pepper(isolated_settings(URL, TEST_SECRET + "x", api_key_pepper=pepper))
    assert one == other == b"a-separate-pepper-of-sufficient-length"


def test_derive_pepper_with_blank_setting_falls_back_to_secret_key() -> None:
    blank = derive_pepper(make_settings(URL, api_key_pepper=SecretStr("  ")))
    assert blank == derive_pepper(make_settings(URL))


def test_hash_key_with_other_pepper_differs() -> None:
    key = generate_key()
    assert hash_key(key, b"a") != hash_key(key, b"b")
    assert len(hash_key(key, b"a")) == 64
