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
    ("typo", "suggestion", "reasons", "says"),
    [
        ("read_contacts", "read_contact", ("singular",), "Gist names this scope in the singular."),
        ("write_contacts", "write_contact", ("singular",), "in the singular"),
        ("read_teammate", "read_teammates", ("plural",), "Gist names this scope in the plural."),
        ("read_tag", "read_tags", ("plural",), "in the plural"),
        ("Read_Teammates", "read_teammates", ("case",), "Gist's scope names are lower case."),
        ("READ_CONTACTS", "read_contact", ("case", "singular"), "lower case. Gist names this scope in the singular"),
        ("read_teamates", "read_teammates", ("spelling",), "misspelling"),
        ("read-teammates", "read_teammates", ("spelling",), "misspelling"),
        ("readteammates", "read_teammates", ("spelling",), "misspelling"),
        ("teammates", "read_teammates", ("prefix",), "start with read_ or write_"),
        ("read.teams!", "read_teams", ("spelling",), "misspelling"),
        ("read.campaigns", None, ("format",), "lower-case words joined by underscores"),
    ],
)
def test_an_obvious_mistake_is_named_plainly_and_not_called_a_new_scope(
    typo: str, suggestion: str | None, reasons: tuple[str, ...], says: str
) -> None:
    with pytest.raises(UnknownScopeError) as info:
        GistProvider().validate_scopes(["read_teams", typo])
    error = info.value
    assert (error.scope, error.suggestion, error.reasons) == (typo, suggestion, reasons)
    assert says in str(error)
    if suggestion:
        assert f"Did you mean {suggestion}?" in str(error)
    assert "with_scopes" not in str(error)  # adding a typo to the catalogue would hide it


@pytest.mark.parametrize(
    ("scopes", "fixed"),
    [
        ("read_teammates,read_contact", "read_teammates read_contact"),
        (["read_teammates, read_contact"], "read_teammates read_contact"),
        ("read_teammates,Read_Contacts", "read_teammates read_contact"),  # each part fixed where it is certain
        ("read_teammates read_teams,", "read_teams"),
    ],
)
def test_a_comma_separated_list_says_scopes_are_space_separated_or_a_list(scopes: object, fixed: str) -> None:
    with pytest.raises(UnknownScopeError) as info:
        GistProvider().validate_scopes(scopes)  # type: ignore[arg-type]
    error = info.value
    assert error.reasons == ("list",) and error.suggestion == fixed
    assert "joined by commas" in str(error) and "separated by spaces, or given as a list" in str(error)
    assert f"Write {fixed!r} or a list, {fixed.split()!r}." in str(error)
    assert "with_scopes" not in str(error)
    assert GistProvider().validate_scopes(fixed) == tuple(fixed.split())  # the fix it offers is valid


@pytest.mark.parametrize(
    ("name", "nearest"),
    [("read_campaigns", None), ("read_segments", None), ("write_teammates", "read_teammates")],
)
def test_only_a_name_that_looks_new_is_pointed_at_with_scopes(name: str, nearest: str | None) -> None:
    with pytest.raises(UnknownScopeError) as info:
        GistProvider().validate_scopes(name)
    error = info.value
    assert error.reasons == () and error.suggestion == nearest
    assert f"If Gist has added {name} after this release" in str(error)
    assert f"GistProvider().with_scopes([{name!r}])" in str(error)
    assert ("Did you mean" in str(error)) == (nearest is not None)
    # The advice works as written.
    assert GistProvider().with_scopes([name]).validate_scopes(name) == (name,)


def test_an_unknown_scope_changes_nothing_and_is_a_value_error() -> None:
    provider = GistProvider()
    with pytest.raises(ValueError, match="read_contacts"):
        provider.validate_scopes("read_teammates read_contacts")
    assert set(provider.scopes) == set(OFFICIAL_SCOPES)


def test_with_scopes_accepts_a_list_a_string_or_a_mapping() -> None:
    from_list = GistProvider().with_scopes(["read_campaigns", "read_forms"])
    from_string = GistProvider().with_scopes("read_campaigns read_forms")
    from_mapping = GistProvider().with_scopes({"read_campaigns": "List campaigns", "read_forms": ""})
    for provider in (from_list, from_string, from_mapping):
        assert provider.validate_scopes(["read_campaigns", "read_forms"]) == ("read_campaigns", "read_forms")
        assert len(provider.scopes) == 13
    assert from_list.scopes["read_campaigns"] == "" and from_mapping.scopes["read_campaigns"] == "List campaigns"
    # Naming an official scope again without a description keeps its description.
    assert GistProvider().with_scopes(["read_teams"]).scopes["read_teams"] == OFFICIAL_SCOPES["read_teams"]


@pytest.mark.parametrize("bad", [["read_a,read_b"], ["read_a", ""], {"two words": "x"}])
def test_with_scopes_refuses_a_name_that_is_several(bad: object) -> None:
    with pytest.raises(ValueError, match="without spaces or commas"):
        GistProvider().with_scopes(bad)  # type: ignore[arg-type]


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
