from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import Settings, load_settings


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("secret", ["", "changeme", "short-secret"])
def test_production_with_weak_secret_refuses_to_start(secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        _settings(environment="production", secret_key=secret)


def test_production_with_strong_secret_is_accepted() -> None:
    settings = _settings(environment="production", secret_key="s" * 48)
    assert settings.signing_key == "s" * 48


def test_development_without_secret_generates_and_persists_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHATBOT_HOME", str(tmp_path))  # the key file lives there
    first = _settings().signing_key
    assert len(first) >= 32
    assert "SECRET_KEY is not set" in caplog.text
    assert _settings().signing_key == first
    assert (tmp_path / ".secret_key").stat().st_mode & 0o777 == 0o600


def test_backends_are_embedded_without_keys() -> None:
    settings = _settings()
    assert settings.resolved_embedding_backend == "local"
    assert settings.resolved_vector_store == "local"
    assert settings.resolved_llm_backend == "extractive"


def test_backends_are_remote_when_keys_are_set() -> None:
    settings = _settings(huggingface_api_key="hf_x", pinecone_api_key="pc")
    assert settings.resolved_embedding_backend == "huggingface"
    assert settings.resolved_vector_store == "pinecone"
    assert settings.resolved_llm_backend == "huggingface"


def test_explicit_backend_overrides_key() -> None:
    settings = _settings(huggingface_api_key="hf_x", embedding_backend="local")
    assert settings.resolved_embedding_backend == "local"
    assert settings.resolved_llm_backend == "huggingface"


def test_settings_read_seed_names_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", "from-env")
    monkeypatch.setenv("HUGGINGFACE_API_KEY", "hf_env")
    monkeypatch.setenv("CHAT_RETENTION_DAYS", "7")
    settings = _settings()
    assert settings.pinecone_api_key is not None
    assert settings.pinecone_api_key.get_secret_value() == "from-env"
    assert settings.chat_retention_days == 7
    assert "from-env" not in repr(settings)


def test_overlap_not_smaller_than_chunk_is_rejected() -> None:
    with pytest.raises(ValidationError, match="CHUNK_OVERLAP_TOKENS"):
        _settings(chunk_tokens=50, chunk_overlap_tokens=50)


def test_env_example_as_is_selects_embedded_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HUGGINGFACE_API_KEY", "PINECONE_API_KEY", "EMBEDDING_URL", "LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    example = Path(__file__).resolve().parent.parent / ".env.example"
    settings = Settings(_env_file=example)
    assert settings.huggingface_api_key is None
    assert settings.pinecone_api_key is None
    assert settings.resolved_embedding_backend == "local"
    assert settings.resolved_vector_store == "local"
    assert settings.resolved_llm_backend == "extractive"


def test_invalid_settings_error_does_not_echo_the_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        _settings(environment="production", secret_key="weak-but-private")
    assert "weak-but-private" not in str(caught.value)


@pytest.mark.parametrize(
    "regex", [".*", "^https?://.*$", "https?://[^/]+", ".+", "(?s).*", "https://.*|http://.*"]
)
def test_cors_regex_matching_any_origin_with_credentials_is_refused(regex: str) -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGIN_REGEX matches any origin"):
        _settings(cors_origin_regex=regex, cors_allow_credentials=True)


@pytest.mark.parametrize(
    "regex", [r"https://app\.example\.com", r"https://([a-z0-9-]+\.)?front\.example\.org"]
)
def test_cors_regex_anchored_to_hosts_with_credentials_is_accepted(regex: str) -> None:
    settings = _settings(cors_origin_regex=regex, cors_allow_credentials=True)
    assert settings.cors_origin_regex == regex


def test_cors_regex_matching_any_origin_without_credentials_is_accepted() -> None:
    assert _settings(cors_origin_regex=".*").cors_origin_regex == ".*"


def test_cors_regex_invalid_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        _settings(cors_origin_regex="https://(app")


def test_load_settings_cors_any_regex_with_credentials_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:

    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("CORS_ORIGIN_REGEX", "^https?://.*$")
    monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", "true")

    with pytest.raises(SystemExit) as exit_info:
        load_settings()

    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(lines) == 1
    assert lines[0].startswith("configuration error:")
    assert "CORS_ORIGIN_REGEX" in lines[0]
