"""OpenID Connect sign-in (authorization code + PKCE) with Authlib's client.

``begin`` makes the address that sends the browser to the identity provider, with a
fresh ``state`` (ties the answer to this browser), ``nonce`` (ties the ID token to this
request) and PKCE ``code_verifier`` (the code is useless to whoever intercepts it);
``finish`` trades the code for tokens and validates the ID token: signature against the
provider's published keys, issuer, audience (this portal's client id), expiry, nonce and
``at_hash``; claims the ID token leaves out (email, groups) come from UserInfo, for the
same subject. Any failure is a ``SignInError`` whose message says what went wrong.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from catalog.errors import PortalError
from portal_backend.settings import Settings

# Discovery documents and key sets are re-read at most this often (keys also when an
# ID token names a key id not seen yet: the provider rotated its keys).
METADATA_TTL_S = 3600.0
# Where the provider sends the browser back (registered with the provider as redirect URI).
CALLBACK_PATH = "/login/oidc/callback"


class SignInError(PortalError):
    """The identity provider's answer could not be accepted (shown on the sign-in page)."""

    status_code = 401
    name = "AuthenticationError"


class ProviderUnavailableError(SignInError):
    """The identity provider could not be reached or answered nonsense."""

    status_code = 502


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    clock_skew_s: int = 60
    timeout_s: float = 10.0


@dataclass(frozen=True)
class AuthorizationStart:
    """What the browser is sent to, and what the portal keeps until it comes back."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class SignedIn:
    claims: dict[str, Any]
    id_token: str  # kept for the logout hint


def check_issuer_url(issuer: str) -> None:
    """Only https issuers, or http on this machine (a provider started for tests)."""
    parts = urlsplit(issuer)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"oidc_issuer must be an https:// URL, got {issuer!r}")


@dataclass
class OidcClient:
    config: OidcConfig
    _metadata: dict[str, Any] | None = field(default=None, repr=False)
    _metadata_at: float = 0.0
    _keys: dict[str, Any] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        check_issuer_url(self.config.issuer)

    # -- the provider's published configuration ----------------------------------------

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=self.config.timeout_s)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailableError(
                f"the identity provider could not be reached ({url}): {exc}"
            ) from None
        if not isinstance(data, dict):
            raise ProviderUnavailableError(f"the identity provider answered {url} with no JSON")
        return data

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            fresh = time.monotonic() - self._metadata_at < METADATA_TTL_S
            if self._metadata is not None and fresh:
                return self._metadata
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        data = self._get_json(url)
        # The document must be the configured issuer's own (OpenID Connect Discovery 4.3).
        if data.get("issuer") != self.config.issuer:
            raise ProviderUnavailableError(
                f"the discovery document names issuer {data.get('issuer')!r}, "
                f"not the configured {self.config.issuer!r}"
            )
        with self._lock:
            self._metadata, self._metadata_at, self._keys = data, time.monotonic(), None
        return data

    def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            self._keys = self._get_json(self.metadata()["jwks_uri"])
        # The JWKS document as published (a dict); joserfc types it as its own TypedDict.
        return KeySet.import_key_set(self._keys)  # type: ignore[arg-type]

    def _client(self) -> OAuth2Session:
        return OAuth2Session(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            scope=" ".join(self.config.scopes),
            redirect_uri=self.config.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method=(
                "client_secret_basic" if self.config.client_secret else "none"
            ),
        )

    # -- the two legs of the flow ------------------------------------------------------

    def begin(self) -> AuthorizationStart:
        endpoint = self.metadata()["authorization_endpoint"]
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        with self._client() as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, nonce=nonce, code_verifier=verifier
            )
        return AuthorizationStart(url=url, state=state, nonce=nonce, code_verifier=verifier)

    def finish(
        self,
        *,
        code: str,
        state: str,
        expected_state: str,
        nonce: str,
        code_verifier: str,
        issuer: str | None = None,
    ) -> SignedIn:
        # The state must be the one this browser was sent off with: anything else is a
        # forged or replayed answer (login CSRF), refused before the code is used.
        if not expected_state or not hmac.compare_digest(state.encode(), expected_state.encode()):
            raise SignInError(
                "the sign-in answer does not belong to this browser's sign-in (state "
                "mismatch); start again from the sign-in page"
            )
        # RFC 9207: a provider that names itself in the answer must be the configured one
        # (an answer from another provider the browser talks to: a mix-up attack).
        if issuer is not None and issuer != self.config.issuer:
            raise SignInError(f"the sign-in answer came from {issuer!r}, not the configured issuer")
        if not code:
            raise SignInError("the identity provider sent no authorization code")
        metadata = self.metadata()
        try:
            with self._client() as client:
                token = client.fetch_token(
                    metadata["token_endpoint"],
                    code=code,
                    code_verifier=code_verifier,
                    timeout=self.config.timeout_s,
                )
        except (OAuth2Error, requests.RequestException) as exc:
            raise SignInError(f"the identity provider refused the code: {exc}") from None
        id_token = token.get("id_token")
        if not id_token:
            raise SignInError("the identity provider sent no ID token (is 'openid' a scope?)")
        claims = self._validate(id_token, nonce, token.get("access_token"))
        if token.get("access_token"):
            claims = {**self._userinfo(token["access_token"], claims["sub"]), **claims}
        return SignedIn(claims=claims, id_token=id_token)

    def _userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        """The UserInfo claims (providers often keep email and groups out of the ID
        token when an access token can fetch them); only if they are about ``subject``."""
        endpoint = self.metadata().get("userinfo_endpoint")
        if not endpoint:
            return {}
        try:
            response = httpx.get(
                endpoint,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self.config.timeout_s,
            )
            response.raise_for_status()
            info = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailableError(f"the provider's UserInfo failed: {exc}") from None
        # OpenID Connect Core 5.3.2: a UserInfo answer about someone else is not used.
        if not isinstance(info, dict) or info.get("sub") != subject:
            raise SignInError("the provider's UserInfo is about another subject than the ID token")
        return info

    def _validate(self, id_token: str, nonce: str, access_token: str | None) -> dict[str, Any]:
        metadata = self.metadata()
        registry = JWSRegistry(
            algorithms=metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        )
        try:
            try:
                decoded = jwt.decode(id_token, self._key_set(), registry=registry)
            except InvalidKeyIdError:
                decoded = jwt.decode(id_token, self._key_set(refresh=True), registry=registry)
            options: dict[str, Any] = {
                "iss": {"essential": True, "value": self.config.issuer},
                # Authlib alone only compares a single audience through azp: state it.
                "aud": {"essential": True, "values": [self.config.client_id]},
            }
            params: dict[str, Any] = {"nonce": nonce, "client_id": self.config.client_id}
            if access_token:
                params["access_token"] = access_token
            claims = CodeIDToken(decoded.claims, decoded.header, options, params)
            claims.validate(leeway=self.config.clock_skew_s)
        except JoseError as exc:
            raise SignInError(f"the ID token was refused: {_describe(exc)}") from None
        return dict(claims)

    def logout_url(self, id_token: str | None, post_logout_redirect_uri: str) -> str | None:
        """The provider's end-session address (RP-initiated logout), if it has one."""
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except SignInError:
            return None  # signing out of the portal must not depend on the provider
        if not endpoint:
            return None
        params = {
            "client_id": self.config.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }
        if id_token:
            params["id_token_hint"] = id_token
        return str(httpx.URL(endpoint, params=params))


def _describe(exc: JoseError) -> str:
    """A person-readable reason for the common ID token failures."""
    name = type(exc).__name__
    claim = getattr(exc, "claim", None)
    if name == "ExpiredTokenError":
        return "it has expired (check the clocks of the portal and the provider)"
    if claim == "aud":
        return "it was issued for another client (audience is not this portal's client id)"
    if claim == "iss":
        return "it was issued by another issuer"
    if claim == "nonce":
        return "its nonce does not match this sign-in (replayed?)"
    if name == "BadSignatureError":
        return "its signature does not verify with the provider's keys"
    return f"{name}: {exc}"


def client_from_settings(settings: Settings) -> OidcClient | None:
    """The configured identity provider's client; None when no issuer is configured (the
    portal then signs people in with a pasted API token)."""
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_client_id:
        raise ValueError("RAGPORTAL_OIDC_CLIENT_ID is required with RAGPORTAL_OIDC_ISSUER")
    if "openid" not in settings.oidc_scopes:
        raise ValueError("RAGPORTAL_OIDC_SCOPES must include 'openid'")
    return OidcClient(
        OidcConfig(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            redirect_uri=settings.base_url.rstrip("/") + CALLBACK_PATH,
            scopes=tuple(settings.oidc_scopes),
            clock_skew_s=settings.oidc_clock_skew_s,
        )
    )
