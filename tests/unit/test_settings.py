from pathlib import Path

import pytest

from pipeline.settings import Settings, SettingsError, load_settings


def test_defaults_when_environment_is_empty() -> None:
    settings = load_settings({})
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.allow_private_networks is False
    assert settings.topic("news.entries") == "news.entries"


def test_values_are_read_and_typed() -> None:
    settings = load_settings(
        {
            "NEWSWATCH_PARTITIONS": "12",
            "NEWSWATCH_ALLOW_PRIVATE_NETWORKS": "true",
            "NEWSWATCH_FEEDS": "/tmp/feeds.yaml",
            "NEWSWATCH_TOPIC_PREFIX": "staging.",
        }
    )
    assert settings.partitions == 12
    assert settings.allow_private_networks is True
    assert settings.feeds == Path("/tmp/feeds.yaml")
    assert settings.topic("news.dlq") == "staging.news.dlq"


def test_unknown_variable_fails_fast_naming_it() -> None:
    with pytest.raises(SettingsError, match="NEWSWATCH_PARTITON"):
        load_settings({"NEWSWATCH_PARTITON": "3"})


def test_invalid_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="NEWSWATCH_PARTITIONS"):
        load_settings({"NEWSWATCH_PARTITIONS": "many"})
    with pytest.raises(SettingsError, match="NEWSWATCH_BATCH_SIZE"):
        load_settings({"NEWSWATCH_BATCH_SIZE": "0"})


def test_other_variables_are_ignored() -> None:
    assert load_settings({"PATH": "/bin", "NEWSWATCHER": "x"}).partitions == Settings().partitions


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(Exception, match="frozen"):
        settings.partitions = 3  # type: ignore[misc]


def test_user_agent_names_the_contact_url() -> None:
    settings = load_settings({"NEWSWATCH_CONTACT_URL": "https://example.org/bot"})
    assert "https://example.org/bot" in settings.http_user_agent


def test_the_image_points_every_data_file_setting_at_its_copy_of_deploy() -> None:
    """In the image the package lives in site-packages, so a default computed from the
    repository root points nowhere: every such path must be set by the Dockerfile."""
    from pipeline.settings import DEPLOY_DIR, REPO_ROOT

    dockerfile = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path) and default.is_relative_to(DEPLOY_DIR):
            expected = f"NEWSWATCH_{name.upper()}=/app/deploy/{default.relative_to(DEPLOY_DIR)}"
            assert expected in dockerfile, f"deploy/Dockerfile lacks {expected}"


def test_native_script_variables_are_not_mistaken_for_settings() -> None:
    settings = load_settings({"NEWSWATCH_LOCAL_RUN_DIR": "/tmp/run", "NEWSWATCH_PARTITIONS": "2"})
    assert settings.partitions == 2
    with pytest.raises(SettingsError, match="NEWSWATCH_LOCALE"):
        load_settings({"NEWSWATCH_LOCALE": "en"})
