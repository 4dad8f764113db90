"""Tiny in-memory OAuth2 authorization server for tests ("fake Google / fake Microsoft").

Implements, with starlette:
  * authorization code grant + PKCE (S256/plain)        GET  {p}/authorize
  * token endpoint: authorization_code, refresh_token,
    device_code (RFC 8628), client_credentials           POST {p}/token
  * device authorization endpoint (RFC 8628)             POST {p}/device/code
  * token introspection (RFC 7662)                       POST {p}/introspect
  * revocation (RFC 7009)                                POST {p}/revoke
  * userinfo, JWKS, OIDC discovery                       GET  {p}/userinfo, /jwks,
                                                              /.well-known/openid-configuration
  * test-control endpoints under /_test/... (issue, device/approve, device/expire,
    revoke_all, stats: successful refresh grants per email, outage: 503 on token,
    introspection, device and userinfo endpoints — Dovecot then answers NO [UNAVAILABLE] —,
    login_as: who signs in for a login_hint, revocations: the revocation log)
Access tokens are RS256 JWTs (so they can also be validated locally), and are
also kept in memory so introspection can report expiry/revocation.

Two URL "profiles" are mounted so client code can be pointed at shapes that look
like the real providers:
  google:    /google/o/oauth2/v2/auth, /google/token, /google/device/code, ...
  microsoft: /microsoft/{tenant}/oauth2/v2.0/authorize, .../token, .../devicecode
  plain:     /plain/authorize, /plain/token, /plain/device/code, /plain/revoke — a provider
             without OpenID Connect: never an id_token, no userinfo
plus the generic prefix "" (/authorize, /token, /device/code, /introspect, ...).

The device authorization endpoint authenticates confidential clients as the token endpoint
does (RFC 8628 3.1); public clients (secret None) send only their client_id.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class State:
    issuer: str
    clients: dict[str, str | None] = field(default_factory=dict)  # client_id -> secret (None = public)
    access_ttl: int = 3600
    codes: dict = field(default_factory=dict)
    access: dict = field(default_factory=dict)  # jti -> {sub, email, scope, client_id, exp, revoked}
    refresh: dict = field(default_factory=dict)  # refresh token -> {email, scope, client_id}
    devices: dict = field(default_factory=dict)  # device_code -> {...}
    rotate_refresh: bool = False  # Microsoft rotates refresh tokens, Google doesn't
    refresh_grants: dict = field(default_factory=dict)  # email -> successful refresh grants (tests count)
    outage: bool = False  # 503 on token, introspection, device and userinfo endpoints
    login_as: dict = field(default_factory=dict)  # login_hint -> the account that actually signs in
    revocations: list = field(default_factory=list)  # what /revoke was asked to revoke
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"

    # -- token minting ---------------------------------------------------
    def mint(
        self, email: str, scope: str, client_id: str, ttl: int | None = None, extra: dict | None = None
    ) -> dict:
        now = int(time.time())
        ttl = self.access_ttl if ttl is None else ttl
        jti = uuid.uuid4().hex
        claims = {
            "iss": self.issuer,
            "sub": email,
            "email": email,
            "aud": client_id,
            "azp": client_id,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": jti,
            **(extra or {}),
        }
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
        with self.lock:
            self.access[jti] = dict(claims, revoked=False)
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": scope}

    def new_refresh(self, email, scope, client_id) -> str:
        rt = "rt-" + secrets.token_urlsafe(24)
        self.refresh[rt] = {"email": email, "scope": scope, "client_id": client_id}
        return rt

    def lookup(self, token: str) -> dict | None:
        try:
            claims = jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False},
            )
        except jwt.PyJWTError:
            return None
        rec = self.access.get(claims.get("jti"))
        if not rec or rec["revoked"] or rec["exp"] < time.time():
            return None
        return rec

    def jwks(self) -> dict:
        pub = self.key.public_key().public_numbers()

        def b64(n):
            return (
                base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()
            )

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": b64(pub.n),
                    "e": b64(pub.e),
                }
            ]
        }

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


async def _form(request: Request) -> dict:
    """application/x-www-form-urlencoded body -> dict (avoids the python-multipart dependency)."""
    return {k: v[-1] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}


def _err(error: str, desc: str = "", status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": desc}, status_code=status)


def _client_auth(st: State, form, request: Request) -> str | None:
    """Returns client_id if the client authenticated (basic or post body), else None."""
    cid, secret = form.get("client_id"), form.get("client_secret")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic "):
        cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
    if cid not in st.clients:
        return None
    expected = st.clients[cid]
    if expected is not None and secret != expected:
        return None
    return cid


def _unavailable() -> JSONResponse:
    return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)


def _oidc(request: Request) -> bool:
    return not request.url.path.startswith("/plain")


def build_app(st: State) -> Starlette:
    async def authorize(request: Request):
        q = request.query_params
        cid, redirect_uri = q.get("client_id"), q.get("redirect_uri")
        if cid not in st.clients or not redirect_uri:
            return _err("invalid_request", "unknown client or missing redirect_uri")
        params = {"state": q["state"]} if "state" in q else {}
        if q.get("response_type") != "code":
            return RedirectResponse(
                f"{redirect_uri}?{urlencode(dict(params, error='unsupported_response_type'))}"
            )
        if q.get("login_hint", "") == "deny@example.test" or q.get("x_deny"):
            return RedirectResponse(f"{redirect_uri}?{urlencode(dict(params, error='access_denied'))}")
        code = secrets.token_urlsafe(16)
        hint = q.get("login_hint") or "alice@example.test"
        st.codes[code] = {
            "client_id": cid,
            "redirect_uri": redirect_uri,
            "scope": q.get("scope", ""),
            "email": st.login_as.get(hint, hint),
            "challenge": q.get("code_challenge"),
            "method": q.get("code_challenge_method", "plain"),
            "exp": time.time() + 60,
        }
        return RedirectResponse(f"{redirect_uri}?{urlencode(dict(params, code=code))}", status_code=302)

    def _token_response(email, scope, cid, with_refresh=True, prev_rt=None, rotate=False, oidc=True):
        body = st.mint(email, scope, cid)
        if with_refresh:
            body["refresh_token"] = prev_rt if (prev_rt and not rotate) else st.new_refresh(email, scope, cid)
        if oidc and "openid" in scope.split():
            now = int(time.time())
            body["id_token"] = jwt.encode(
                {"iss": st.issuer, "sub": email, "email": email, "aud": cid, "iat": now, "exp": now + 3600},
                st.key,
                algorithm="RS256",
                headers={"kid": st.kid},
            )
        if prev_rt and not rotate:
            body.pop("refresh_token")  # Google: refresh grant returns no new refresh token
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def token(request: Request):
        if st.outage:
            return _unavailable()
        form = await _form(request)
        cid = _client_auth(st, form, request)
        if cid is None:
            return _err("invalid_client", "client authentication failed", 401)
        gt = form.get("grant_type")
        if gt == "authorization_code":
            c = st.codes.pop(form.get("code", ""), None)
            if not c or c["client_id"] != cid or c["exp"] < time.time():
                return _err("invalid_grant", "bad or expired code")
            if c["redirect_uri"] != form.get("redirect_uri"):
                return _err("invalid_grant", "redirect_uri mismatch")
            if c["challenge"]:
                v = form.get("code_verifier", "")
                calc = (
                    base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode()
                    if c["method"] == "S256"
                    else v
                )
                if calc != c["challenge"]:
                    return _err("invalid_grant", "PKCE verification failed")
            return _token_response(c["email"], c["scope"], cid, oidc=_oidc(request))
        if gt == "refresh_token":
            rt = form.get("refresh_token", "")
            r = st.refresh.get(rt)
            if not r or r["client_id"] != cid:
                return _err("invalid_grant", "Token has been expired or revoked.")
            # Microsoft rotates refresh tokens (old one stops working here), Google does not
            rotate = st.rotate_refresh or request.url.path.startswith("/microsoft")
            if rotate:
                st.refresh.pop(rt)
            with st.lock:
                st.refresh_grants[r["email"]] = st.refresh_grants.get(r["email"], 0) + 1
            # Microsoft: a refresh's `scope` picks the resource the access token is for
            asked = form.get("scope")
            return _token_response(
                r["email"], asked or r["scope"], cid, prev_rt=rt, rotate=rotate, oidc=_oidc(request)
            )
        if gt == DEVICE_GRANT:
            d = st.devices.get(form.get("device_code", ""))
            if not d or d["client_id"] != cid:
                return _err("invalid_grant", "unknown device_code")
            if d["exp"] < time.time():
                return _err("expired_token")
            now = time.time()
            if now - d["last_poll"] < d["interval"] - 0.05:
                d["last_poll"] = now
                return _err("slow_down")
            d["last_poll"] = now
            if d["status"] == "pending":
                return _err("authorization_pending")
            if d["status"] == "denied":
                return _err("access_denied")
            st.devices.pop(form["device_code"])
            return _token_response(d["email"], d["scope"], cid, oidc=_oidc(request))
        if gt == "client_credentials":
            return JSONResponse(st.mint(cid, form.get("scope", ""), cid))
        return _err("unsupported_grant_type")

    async def device_code(request: Request):
        if st.outage:
            return _unavailable()
        form = await _form(request)
        cid = _client_auth(st, form, request)  # RFC 8628 3.1: confidential clients authenticate
        if cid is None:
            return _err("invalid_client", "client authentication failed", 401)
        dc, uc = secrets.token_urlsafe(24), f"{secrets.randbelow(10**4):04d}-{secrets.randbelow(10**4):04d}"
        interval = int(request.app.state.device_interval)
        st.devices[dc] = {
            "client_id": cid,
            "user_code": uc,
            "scope": form.get("scope", ""),
            "status": "pending",
            "email": None,
            "exp": time.time() + 600,
            "interval": interval,
            "last_poll": 0.0,
        }
        base = str(request.base_url).rstrip("/")
        body = {"device_code": dc, "user_code": uc, "expires_in": 600, "interval": interval}
        if request.url.path.startswith("/google"):
            body["verification_url"] = f"{base}/device"  # Google spells it *_url
        else:
            body["verification_uri"] = f"{base}/device"
            body["verification_uri_complete"] = f"{base}/device?user_code={uc}"
        if request.url.path.startswith("/microsoft"):
            body["message"] = f"To sign in, open {base}/device and enter the code {uc} to authenticate."
        return JSONResponse(body)

    async def introspect(request: Request):
        if st.outage:
            return _unavailable()
        form = await _form(request)
        rec = st.lookup(form.get("token", ""))
        if rec is None:
            return JSONResponse({"active": False})
        return JSONResponse(
            {
                "active": True,
                "sub": rec["sub"],
                "email": rec["email"],
                "username": rec["email"],
                "scope": rec["scope"],
                "client_id": rec["client_id"] if "client_id" in rec else rec["azp"],
                "exp": rec["exp"],
                "iat": rec["iat"],
                "iss": st.issuer,
                "token_type": "Bearer",
            }
        )

    async def revoke(request: Request):
        form = await _form(request)
        t = form.get("token", "")
        refresh = st.refresh.pop(t, None)
        rec = st.lookup(t)
        if rec:
            rec["revoked"] = True
        found = refresh or rec
        st.revocations.append(
            {
                "client_id": _client_auth(st, form, request),
                "token_type_hint": form.get("token_type_hint"),
                "kind": "refresh_token" if refresh else "access_token" if rec else None,
                "email": found["email"] if found else None,
            }
        )
        return Response(status_code=200)

    async def userinfo(request: Request):
        if st.outage:
            return _unavailable()
        auth = request.headers.get("authorization", "")
        rec = st.lookup(auth[7:]) if auth.lower().startswith("bearer ") else None
        if rec is None:
            return _err("invalid_token", status=401)
        return JSONResponse({"sub": rec["sub"], "email": rec["email"], "email_verified": True})

    async def discovery(request: Request):
        b = st.issuer
        return JSONResponse(
            {
                "issuer": b,
                "authorization_endpoint": f"{b}/authorize",
                "token_endpoint": f"{b}/token",
                "device_authorization_endpoint": f"{b}/device/code",
                "introspection_endpoint": f"{b}/introspect",
                "revocation_endpoint": f"{b}/revoke",
                "userinfo_endpoint": f"{b}/userinfo",
                "jwks_uri": f"{b}/jwks",
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    DEVICE_GRANT,
                    "client_credentials",
                ],
                "code_challenge_methods_supported": ["S256", "plain"],
                "response_types_supported": ["code"],
            }
        )

    # ---- test control -------------------------------------------------------
    async def t_device_approve(request: Request):
        j = await request.json()
        for d in st.devices.values():
            if d["user_code"] == j["user_code"]:
                d["status"] = "denied" if j.get("deny") else "approved"
                d["email"] = j.get("email", "alice@example.test")
                return JSONResponse({"ok": True})
        return _err("not_found", status=404)

    async def t_issue(request: Request):
        j = await request.json()
        body = st.mint(
            j["email"],
            j.get("scope", "https://mail.google.com/"),
            j.get("client_id", "test-client"),
            ttl=j.get("expires_in"),
            extra={"pad": "x" * j["pad"]} if j.get("pad") else None,
        )
        body["refresh_token"] = st.new_refresh(j["email"], body["scope"], j.get("client_id", "test-client"))
        return JSONResponse(body)

    async def t_device_expire(request: Request):
        j = await request.json()
        for d in st.devices.values():
            if d["user_code"] == j["user_code"]:
                d["exp"] = time.time() - 1
                return JSONResponse({"ok": True})
        return _err("not_found", status=404)

    async def t_stats(request: Request):
        email = request.query_params.get("email", "")
        return JSONResponse({"refresh_grants": st.refresh_grants.get(email, 0)})

    async def t_outage(request: Request):
        st.outage = bool((await request.json()).get("on", True))
        return JSONResponse({"outage": st.outage})

    async def t_login_as(request: Request):
        j = await request.json()
        st.login_as[j["hint"]] = j["email"]
        return JSONResponse({"ok": True})

    async def t_revocations(request: Request):
        email = request.query_params.get("email")
        return JSONResponse([r for r in st.revocations if email is None or r["email"] == email])

    async def t_revoke_all(request: Request):
        for r in st.access.values():
            r["revoked"] = True
        st.refresh.clear()
        return JSONResponse({"ok": True})

    routes = [
        Route("/.well-known/openid-configuration", discovery),
        Route("/jwks", lambda r: JSONResponse(st.jwks())),
        Route("/_test/device/approve", t_device_approve, methods=["POST"]),
        Route("/_test/issue", t_issue, methods=["POST"]),
        Route("/_test/revoke_all", t_revoke_all, methods=["POST"]),
        Route("/_test/device/expire", t_device_expire, methods=["POST"]),
        Route("/_test/stats", t_stats),
        Route("/_test/outage", t_outage, methods=["POST"]),
        Route("/_test/login_as", t_login_as, methods=["POST"]),
        Route("/_test/revocations", t_revocations),
        Route("/_test/public.pem", lambda r: Response(st.public_pem(), media_type="application/x-pem-file")),
    ]
    # generic, google-shaped and microsoft-shaped paths all hit the same handlers
    for p in ("", "/google", "/microsoft/{tenant}/oauth2/v2.0"):
        routes += [
            Route(f"{p}/authorize", authorize),
            Route(f"{p}/token", token, methods=["POST"]),
            Route(f"{p}/introspect", introspect, methods=["POST"]),
            Route(f"{p}/revoke", revoke, methods=["POST"]),
            Route(f"{p}/userinfo", userinfo),
        ]
    # a provider without OpenID Connect: no userinfo route, and its token answers no id_token
    routes += [
        Route(f"/plain/{name}", handler, methods=methods)
        for name, handler, methods in (
            ("authorize", authorize, ["GET"]),
            ("token", token, ["POST"]),
            ("device/code", device_code, ["POST"]),
            ("revoke", revoke, ["POST"]),
        )
    ]
    routes += [
        Route("/device/code", device_code, methods=["POST"]),
        Route("/google/o/oauth2/v2/auth", authorize),
        Route("/google/device/code", device_code, methods=["POST"]),
        Route("/google/tokeninfo", introspect, methods=["POST", "GET"]),
        Route("/microsoft/{tenant}/oauth2/v2.0/devicecode", device_code, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.idp = st
    app.state.device_interval = 1
    return app


class MockIdP:
    """Run the app with uvicorn in a background thread (for pytest fixtures)."""

    def __init__(self, host="127.0.0.1", port=0, clients=None, **kw):
        import socket

        import uvicorn

        self._sock = socket.socket()
        # without SO_REUSEADDR, TIME_WAIT leftovers of this socket block a restart on the same port for 60 s
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()
        self.url = f"http://{host}:{self.port}"
        self.state = State(
            issuer=self.url, clients=clients or {"test-client": "test-secret", "public-client": None}, **kw
        )
        self.app = build_app(self.state)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)
        self._sock.close()


if __name__ == "__main__":
    import argparse

    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=10080)
    a = ap.parse_args()
    st = State(
        issuer=f"http://127.0.0.1:{a.port}", clients={"test-client": "test-secret", "public-client": None}
    )
    uvicorn.run(build_app(st), host="127.0.0.1", port=a.port, log_level="info")


def idp_overrides(idp: MockIdP) -> dict[str, dict[str, object]]:
    """Point the built-in google and microsoft at the local authorization server."""
    base = idp.url
    ms = f"{base}/microsoft/{{tenant}}/oauth2/v2.0"
    return {
        "google": {
            "authorization_endpoint": f"{base}/google/o/oauth2/v2/auth",
            "token_endpoint": f"{base}/google/token",
            "device_authorization_endpoint": f"{base}/google/device/code",
            "revocation_endpoint": f"{base}/google/revoke",
            "userinfo_endpoint": f"{base}/google/userinfo",
            "issuers": [base],
        },
        "microsoft": {
            "authorization_endpoint": f"{ms}/authorize",
            "token_endpoint": f"{ms}/token",
            "device_authorization_endpoint": f"{ms}/devicecode",
            "issuers": [base],
        },
    }
