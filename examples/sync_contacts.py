"""The contact-sync script; the whole script is gist_authlib/examples/sync_contacts.py (see README.md here).

    python examples/sync_contacts.py contacts.csv --token "$GIST_ACCESS_TOKEN"
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("gist_authlib.examples.sync_contacts", run_name="__main__")
