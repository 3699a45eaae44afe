"""An OAuth 2 server that is not our sandbox: Authlib's own RFC 6749 server components on Flask.

It follows RFC 6749 strictly (exact redirect URIs, single-use codes, state echoed) plus Gist's quirks:
client credentials in the body only (``client_secret_post``; HTTP Basic is refused) and a token response
holding ``access_token`` alone. It shares no code with ``gist_authlib.sandbox``, so a test that passes
against both does not rest on the sandbox agreeing with the client. ``check_pkce=False`` makes it
ignore PKCE, as Gist may.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, OAuth2Error, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

TEAMMATES = [
    {"id": 9001, "name": "Independent Ida", "email": "ida@independent.example"},
    {"id": 9002, "name": "Strict Stan", "email": "stan@independent.example"},
]
WORKSPACE_ID = 4242
#: 23 contacts, served without "pages" links (unlike the sandbox), so clients must walk page numbers.
CONTACTS = [{"id": 20000 + i, "email": f"c{i}@independent.example", "name": f"Contact {i}"} for i in range(23)]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    #: Gist's quirk by default; a generic provider would also take client_secret_basic.
    auth_methods: tuple[str, ...] = ("client_secret_post",)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None = None
    code_challenge_method: str | None = None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class IndependentServer:
    """Serve the server on loopback in a thread; ``token_requests`` counts calls to the token endpoint."""

    client: Client
    check_pkce: bool = True
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    #: Answer this many API requests with 429 and Retry-After: 1 before serving them.
    throttle_next: int = 0
    api_requests: int = 0

    def __post_init__(self) -> None:
        self.app = self._build()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # A short poll: shutdown() waits for the loop to notice, and werkzeug's default 0.5 s made every stop that long.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> IndependentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def _build(self) -> Flask:
        outer = self
        app = Flask("independent-oauth-server")

        class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012

            def save_authorization_code(self, code: str, req: Any) -> None:
                outer.codes[code] = Code(
                    code,
                    req.client.client_id,
                    req.payload.redirect_uri,
                    req.scope,
                    req.payload.data.get("code_challenge"),
                    req.payload.data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = outer.codes.get(code)
                return found if found and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                outer.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> dict[str, int]:
                return {"id": 1}

        def query_client(client_id: str) -> Client | None:
            return outer.client if client_id == outer.client.client_id else None

        def save_token(token: dict[str, Any], req: Any) -> None:
            outer.tokens.add(token["access_token"])

        server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        server.register_grant(CodeGrant, [CodeChallenge(required=False)] if self.check_pkce else [])

        @app.get("/oauth/authorize")
        def authorize() -> Any:
            user = {"id": 1}
            try:
                grant = server.get_consent_grant(end_user=user)
            except OAuth2Error as error:
                return server.handle_error_response(None, error)
            return server.create_authorization_response(grant=grant, grant_user=user)  # consent is implied

        @app.post("/oauth/token")
        def token() -> Any:
            outer.token_requests += 1
            answer = server.create_token_response()
            if answer.status_code == 200:
                # Gist's quirk: nothing but the access token.
                body = json.loads(answer.get_data())
                answer = Response(json.dumps({"access_token": body["access_token"]}), 200, mimetype="application/json")
            return answer

        def guard() -> Any:
            outer.api_requests += 1
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or value not in outer.tokens:
                return jsonify({"errors": [{"code": "unauthorized"}]}), 401
            if outer.throttle_next > 0:
                outer.throttle_next -= 1
                return jsonify({"message": "slow down"}), 429, {"Retry-After": "1"}
            return None

        @app.get("/token")
        def token_info() -> Any:  # the workspace a token belongs to, as Gist's token information says
            return guard() or jsonify({"workspace_id": WORKSPACE_ID, "workspace_name": "Independent Workspace"})

        @app.get("/teammates")
        def teammates() -> Any:
            return guard() or jsonify({"teammates": TEAMMATES})

        @app.get("/contacts")
        def contacts() -> Any:
            page, per_page = int(request.args.get("page", 1)), int(request.args.get("per_page", 10))
            return guard() or jsonify({"contacts": CONTACTS[(page - 1) * per_page : page * per_page]})

        return app
