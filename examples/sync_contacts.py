"""Upsert contacts from a CSV file into Gist, with a progress bar and a summary (created, updated, failed).

Columns ``email``, ``user_id``, ``name`` and ``phone`` map to Gist's fields; any other column becomes a
custom property. Each row needs an ``email`` or a ``user_id``: Gist's upsert is keyed by them, so running
the script again (after an interruption, or with an updated file) updates what is there and never creates
duplicates.

    GIST_API_KEY=... python -m gist_authlib.examples.sync_contacts contacts.csv
    python -m gist_authlib.examples.sync_contacts contacts.csv --token "$GIST_ACCESS_TOKEN" --base-url http://127.0.0.1:8765/

A workspace API key (Gist's settings, "API key") is the simplest credential for a script that only touches
your own workspace; an OAuth access token works the same way.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from gist_authlib import GistAPIError, GistClient
from gist_authlib.errors import TokenRevokedError

KNOWN_COLUMNS = ("email", "user_id", "name", "phone")


@dataclass
class Summary:
    """What a sync did."""

    created: int = 0
    updated: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)  # (CSV line, reason)

    def __str__(self) -> str:
        return f"created {self.created}, updated {self.updated}, failed {len(self.failed)}"


def read_rows(stream: TextIO) -> Iterator[tuple[int, dict[str, Any]]]:
    """(CSV line number, Gist contact fields) for each data row."""
    reader = csv.DictReader(stream)
    for row in reader:
        fields: dict[str, Any] = {k: v.strip() for k, v in row.items() if k in KNOWN_COLUMNS and v and v.strip()}
        custom = {k: v for k, v in row.items() if k and k not in KNOWN_COLUMNS and v not in (None, "")}
        if custom:
            fields["custom_properties"] = custom
        yield reader.line_num, fields  # the file's line the row ended on (the header is line 1)


def existing_keys(client: GistClient) -> set[str]:
    """Emails and user_ids already in the workspace, to tell creations from updates (one pass, 60 a page)."""
    keys: set[str] = set()
    for contact in client.contacts.iter_all(per_page=60):
        if contact.email:
            keys.add(f"email:{contact.email}")
        if contact.user_id:
            keys.add(f"user_id:{contact.user_id}")
    return keys


def sync_contacts(
    client: GistClient,
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    total: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Summary:
    """Upsert every row; a row that fails is counted and the sync goes on (a revoked token stops it)."""
    summary = Summary()
    known = existing_keys(client)
    for done, (line, fields) in enumerate(rows, start=1):
        keys = [f"{k}:{fields[k]}" for k in ("email", "user_id") if fields.get(k)]
        if not keys:
            summary.failed.append((line, "no email or user_id"))
        else:
            try:
                client.contacts.upsert(**fields)
            except TokenRevokedError:
                raise
            except GistAPIError as error:
                summary.failed.append((line, error.message))
            else:
                if any(k in known for k in keys):
                    summary.updated += 1
                else:
                    summary.created += 1
                known.update(keys)
        if progress is not None:
            progress(done, total)
    return summary


def progress_bar(stream: TextIO) -> Callable[[int, int | None], None]:
    """A one-line text progress bar."""

    def show(done: int, total: int | None) -> None:
        if total:
            filled = int(30 * done / total)
            stream.write(f"\r[{'#' * filled}{' ' * (30 - filled)}] {done}/{total}")
        else:
            stream.write(f"\r{done} rows")
        stream.flush()

    return show


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv_file", help="the CSV file to sync")
    parser.add_argument(
        "--token",
        default=os.environ.get("GIST_API_KEY") or os.environ.get("GIST_ACCESS_TOKEN"),
        help="API key or access token (default: $GIST_API_KEY or $GIST_ACCESS_TOKEN)",
    )
    parser.add_argument("--base-url", default=os.environ.get("GIST_API_BASE_URL"), help="the API's base URL")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no credential: pass --token or set GIST_API_KEY")
    with open(args.csv_file, newline="", encoding="utf-8") as stream:
        total = max(0, sum(1 for _ in stream) - 1)
    with (
        GistClient.from_api_key(args.token, base_url=args.base_url) as client,
        open(args.csv_file, newline="", encoding="utf-8") as stream,
    ):
        try:
            summary = sync_contacts(client, read_rows(stream), total=total, progress=progress_bar(sys.stderr))
        except TokenRevokedError:
            print("\nGist refused the credential (401): it was revoked or is wrong. Nothing more was sent.")
            return 2
        except GistAPIError as error:  # listing the contacts failed: unreachable, out of time, a wrong answer
            print(f"\n{error.message} Run the sync again: it updates what is there and creates no duplicates.")
            return 2
    print(f"\n{summary}")
    for line, reason in summary.failed:
        print(f"  line {line}: {reason}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
