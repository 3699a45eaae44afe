"""GistProvider: defaults, scope catalogue, custom scopes, pointing at another origin."""

from __future__ import annotations

import dataclasses

import pytest

from gist_authlib import OFFICIAL_SCOPES, GistProvider
from gist_authlib.errors import UnknownScopeError


def test_defaults_come_from_gist_facts() -> None:
    provider = GistProvider()
    assert provider.authorize_url == "https://app.getgist.com/oauth/authorize"
    assert provider.access_token_url == "https://api.getgist.com/oauth/token"
    assert provider.api_base_url == "https://api.getgist.com/"
    assert provider.token_endpoint_auth_method == "client_secret_post"
    assert provider.default_scopes == ("read_teammates",)


def test_catalogue_has_the_eleven_official_scopes_with_descriptions() -> None:
    provider = GistProvider()
    assert len(provider.scopes) == 11
    assert set(provider.scopes) == set(OFFICIAL_SCOPES)
    assert "read_contacts" not in provider.scopes  # contact scopes are singular
    assert all(description.strip() for description in provider.scopes.values())


def test_provider_is_frozen_and_its_catalogue_read_only() -> None:
    provider = GistProvider()
    with pytest.raises(dataclasses.FrozenInstanceError):
        provider.authorize_url = "https://evil.example/"  # type: ignore[misc]
    with pytest.raises(TypeError):
        provider.scopes["sneaky"] = "x"  # type: ignore[index]


def test_with_scopes_returns_a_new_provider_and_leaves_the_old_one() -> None:
    base = GistProvider()
    extended = base.with_scopes({"read_campaigns": "List and view campaigns"})
    assert extended.validate_scopes("read_campaigns read_teammates") == ("read_campaigns", "read_teammates")
    assert "read_campaigns" not in base.scopes
    with pytest.raises(UnknownScopeError):
        base.validate_scopes(["read_campaigns"])


@pytest.mark.parametrize("bad", ["", "two words", "tab\tinside"])
def test_with_scopes_refuses_malformed_names(bad: str) -> None:
    with pytest.raises(ValueError, match="scope name"):
        GistProvider().with_scopes({bad: "x"})


def test_at_points_every_endpoint_at_one_origin() -> None:
    provider = GistProvider.at("http://127.0.0.1:8765/")
    assert provider.authorize_url == "http://127.0.0.1:8765/oauth/authorize"
    assert provider.access_token_url == "http://127.0.0.1:8765/oauth/token"
    assert provider.api_base_url == "http://127.0.0.1:8765/"
    assert provider.install_ack_url == "http://127.0.0.1:8765/install_success"


def test_at_on_an_instance_keeps_its_custom_scopes() -> None:
    provider = GistProvider().with_scopes({"read_forms": "List forms"}).at("https://staging.example")
    assert "read_forms" in provider.scopes
    assert provider.authorize_url == "https://staging.example/oauth/authorize"


@pytest.mark.parametrize("origin", ["127.0.0.1:8765", "ftp://host", "not a url", ""])
def test_at_refuses_something_that_is_not_an_origin(origin: str) -> None:
    with pytest.raises(ValueError):
        GistProvider.at(origin)


def test_relative_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="authorize_url"):
        GistProvider(authorize_url="/oauth/authorize")


def test_api_base_url_always_ends_with_a_slash() -> None:
    assert GistProvider(api_base_url="https://api.example/v1").api_base_url == "https://api.example/v1/"


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (None, ("read_teammates",)),
        ("", ("read_teammates",)),
        ("read_teams read_tags", ("read_teams", "read_tags")),
        (["read_teams", "read_teams", "read_tags"], ("read_teams", "read_tags")),
        ("  read_contact\twrite_contact ", ("read_contact", "write_contact")),
    ],
)
def test_validate_scopes_accepts_lists_and_strings(scopes: object, expected: tuple[str, ...]) -> None:
    assert GistProvider().validate_scopes(scopes) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("read_contacts", "read_contact"),
        ("write_contacts", "write_contact"),
        ("read_teammate", "read_teammates"),
    ],
)
def test_unknown_scope_names_the_nearest_official_one(typo: str, suggestion: str) -> None:
    with pytest.raises(UnknownScopeError) as info:
        GistProvider().validate_scopes([typo])
    assert info.value.suggestion == suggestion
    assert f"did you mean {suggestion}?" in str(info.value).lower()
    assert "with_scopes" in str(info.value)


def test_unknown_scope_without_a_near_match_suggests_nothing() -> None:
    with pytest.raises(UnknownScopeError) as info:
        GistProvider().validate_scopes("zzzzzz")
    assert info.value.suggestion is None
    assert "Did you mean" not in str(info.value)


def test_authlib_kwargs_is_a_fresh_dict_every_time() -> None:
    provider = GistProvider()
    first = provider.authlib_kwargs()
    first["authorize_url"] = "https://evil.example/"
    assert provider.authlib_kwargs()["authorize_url"] == "https://app.getgist.com/oauth/authorize"
    assert provider.authlib_kwargs() is not provider.authlib_kwargs()
