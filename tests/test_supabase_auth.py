"""Supabase sign-in: the verifier's refusals, each by its stable reason (expired, not yet valid,
wrong audience, wrong issuer, `alg: none`, HS/RS confusion, ...), keys from a local JWKS server
through PyJWKClient, the configuration, the control service's door for external accounts, and
redemption through the real edge with a Supabase HS256 token and an RS256 (JWKS) token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pickle
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import grpc
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from edge.candidate_tokens import ACCESS
from edge.server import RunningEdge, start_edge
from edge.supabase_auth import Refusal, SupabaseTokenError, SupabaseUser, SupabaseVerifier
from interview.v1 import invitation_service_pb2
from interview_core.config import ConfigError, Settings
from interview_core.errors import ErrorCode, PlatformError
from launcher.embedded_postgres import free_port
from tests.conftest import Api, Database, TenantWorld, error_code_of

ISSUER = "https://test-project.supabase.co/auth/v1"
SECRET = secrets.token_urlsafe(48)  # a project's legacy JWT secret
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- tokens ----------------------------------------------------------------------------------------

def claims(**changes: Any) -> dict[str, Any]:
    """A signed-in Supabase user's access token claims; a change to None drops the claim."""
    now = int(time.time())
    base: dict[str, Any] = {"iss": ISSUER, "aud": "authenticated", "sub": str(uuid.uuid4()),
                            "email": f"supa-{uuid.uuid4().hex[:8]}@example.com", "role": "authenticated",
                            "aal": "aal1", "session_id": str(uuid.uuid4()), "is_anonymous": False,
                            "iat": now, "exp": now + 3600}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def rs256(payload: dict[str, Any], kid: str = "rsa-1", key: Any = RSA_KEY) -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def es256(payload: dict[str, Any], kid: str = "ec-1") -> str:
    return jwt.encode(payload, EC_KEY, algorithm="ES256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes] | None = None) -> str:
    """A token built by hand, as an attacker would: PyJWT refuses to make these."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{_b64(signature)}"


def hmac_with(key: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(key, data, hashlib.sha256).digest()


# -- a local JWKS server (Supabase's /auth/v1/.well-known/jwks.json) ----------------------------

def public_jwk(kind: str, kid: str) -> dict[str, Any]:
    if kind == "rsa":
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True)
        alg = "RS256"
    else:
        jwk = ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True)
        alg = "ES256"
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class Jwks:
    url: str
    keys: list[dict[str, Any]]
    fetches: int = 0
    failing: bool = False
    extra: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
async def jwks() -> AsyncIterator[Jwks]:
    port = free_port()
    state = Jwks(f"http://127.0.0.1:{port}/auth/v1/.well-known/jwks.json",
                 [public_jwk("rsa", "rsa-1"), public_jwk("ec", "ec-1")])

    async def serve(_request: web.Request) -> web.Response:
        state.fetches += 1
        if state.failing:
            return web.Response(status=503)
        return web.json_response({"keys": state.keys + state.extra})

    app = web.Application()
    app.router.add_get("/auth/v1/.well-known/jwks.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()


def hs_verifier(**kwargs: Any) -> SupabaseVerifier:
    return SupabaseVerifier(issuer=ISSUER, secret=SECRET, **kwargs)


def jwks_verifier(state: Jwks, **kwargs: Any) -> SupabaseVerifier:
    return SupabaseVerifier(issuer=ISSUER, jwks_url=state.url, jwks_cooldown_s=0, **kwargs)


async def refusal(verifier: SupabaseVerifier, token: str) -> Refusal:
    with pytest.raises(SupabaseTokenError) as info:
        await verifier.verify(token)
    error = info.value
    assert error.code in (ErrorCode.UNAUTHENTICATED, ErrorCode.UNAVAILABLE)
    assert not token or token not in error.message
    return error.reason


# -- the verifier: accepted tokens ---------------------------------------------------------------

async def test_hs256_token_names_the_user() -> None:
    payload = claims(email="Ada@Example.com")
    user = await hs_verifier().verify(hs256(payload))
    assert user == SupabaseUser(user_id=payload["sub"], email="Ada@Example.com", expires_at=payload["exp"])


async def test_rs256_and_es256_tokens_verify_with_published_keys(jwks: Jwks) -> None:
    verifier = jwks_verifier(jwks)
    try:
        for token, payload in ((rs256(p := claims()), p), (es256(q := claims()), q)):
            assert (await verifier.verify(token)).user_id == payload["sub"]
    finally:
        verifier.close()


async def test_key_set_is_cached_between_verifications(jwks: Jwks) -> None:
    verifier = SupabaseVerifier(issuer=ISSUER, jwks_url=jwks.url, jwks_cache_s=300)
    try:
        before = jwks.fetches
        for _ in range(5):
            await verifier.verify(rs256(claims()))
        assert jwks.fetches == before + 1
        # An unknown kid refetches once, then the cooldown keeps a flood of them off the server.
        for _ in range(5):
            assert await refusal(verifier, rs256(claims(), kid=f"made-up-{uuid.uuid4().hex}")) is Refusal.UNKNOWN_KEY
        assert jwks.fetches <= before + 2
    finally:
        verifier.close()


async def test_clock_skew_within_leeway_is_accepted() -> None:
    now = int(time.time())
    verifier = hs_verifier(leeway_s=30)
    assert await verifier.verify(hs256(claims(exp=now - 10, iat=now - 3600)))
    assert await verifier.verify(hs256(claims(nbf=now + 10, iat=now + 10)))


async def test_token_without_role_or_email_is_still_a_user() -> None:
    payload = claims(role=None, email=None)
    user = await hs_verifier().verify(hs256(payload))
    assert (user.user_id, user.email) == (payload["sub"], "")


# -- the verifier: each refusal ------------------------------------------------------------------

async def test_expired_token_is_refused() -> None:
    now = int(time.time())
    assert await refusal(hs_verifier(), hs256(claims(iat=now - 7200, exp=now - 120))) is Refusal.EXPIRED


async def test_not_yet_valid_token_is_refused() -> None:
    now = int(time.time())
    assert await refusal(hs_verifier(), hs256(claims(nbf=now + 600))) is Refusal.NOT_YET_VALID
    assert await refusal(hs_verifier(), hs256(claims(iat=now + 600, exp=now + 4000))) is Refusal.NOT_YET_VALID


async def test_wrong_audience_is_refused() -> None:
    assert await refusal(hs_verifier(), hs256(claims(aud="anon"))) is Refusal.AUDIENCE
    assert await refusal(hs_verifier(), hs256(claims(aud=["service", "other"]))) is Refusal.AUDIENCE


async def test_wrong_issuer_is_refused() -> None:
    verifier = hs_verifier()
    assert await refusal(verifier, hs256(claims(iss="https://other-project.supabase.co/auth/v1"))) is Refusal.ISSUER
    assert await refusal(verifier, hs256(claims(iss="supabase"))) is Refusal.ISSUER  # the anon key's


async def test_alg_none_is_refused(jwks: Jwks) -> None:
    payload = claims()
    for verifier in (hs_verifier(), jwks_verifier(jwks)):
        for alg in ("none", "None", "NONE", ""):
            assert await refusal(verifier, forged({"alg": alg, "typ": "JWT"}, payload)) is Refusal.ALGORITHM
        assert await refusal(verifier, forged({"typ": "JWT"}, payload)) is Refusal.ALGORITHM  # no alg at all
        verifier.close()


async def test_hs256_signed_with_the_public_key_is_refused_when_only_jwks_is_configured(jwks: Jwks) -> None:
    """The classic confusion: the attacker knows the RSA public key and uses it as an HMAC secret."""
    verifier = jwks_verifier(jwks)
    try:
        for key in (RSA_PUBLIC_PEM, json.dumps(public_jwk("rsa", "rsa-1")).encode()):
            token = forged({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), hmac_with(key))
            assert await refusal(verifier, token) is Refusal.ALGORITHM
    finally:
        verifier.close()


async def test_hs256_signed_with_the_public_key_is_refused_when_both_are_configured(jwks: Jwks) -> None:
    """With a secret and JWKS both set, HS256 is checked against the secret only, never a JWKS key."""
    verifier = SupabaseVerifier(issuer=ISSUER, secret=SECRET, jwks_url=jwks.url)
    try:
        token = forged({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims(), hmac_with(RSA_PUBLIC_PEM))
        assert await refusal(verifier, token) is Refusal.SIGNATURE
        assert (await verifier.verify(rs256(p := claims()))).user_id == p["sub"]  # both families still work
        assert (await verifier.verify(hs256(q := claims()))).user_id == q["sub"]
    finally:
        verifier.close()


async def test_rs256_is_refused_when_only_a_secret_is_configured() -> None:
    assert await refusal(hs_verifier(), rs256(claims())) is Refusal.ALGORITHM
    assert await refusal(hs_verifier(), es256(claims())) is Refusal.ALGORITHM


async def test_a_key_is_used_only_with_its_own_algorithm(jwks: Jwks) -> None:
    """The EC key's kid on a token that says RS256 (and the other way round): refused, not tried."""
    verifier = jwks_verifier(jwks)
    try:
        assert await refusal(verifier, rs256(claims(), kid="ec-1")) is Refusal.ALGORITHM
        assert await refusal(verifier, jwt.encode(claims(), EC_KEY, algorithm="ES256",
                                                  headers={"kid": "rsa-1"})) is Refusal.ALGORITHM
    finally:
        verifier.close()


async def test_other_algorithms_are_refused(jwks: Jwks) -> None:
    payload = claims()
    verifier = SupabaseVerifier(issuer=ISSUER, secret=SECRET, jwks_url=jwks.url)
    try:
        for alg in ("HS512", "HS384", "RS512", "PS256", "ES384", "EdDSA"):
            assert await refusal(verifier, forged({"alg": alg, "kid": "rsa-1"}, payload, hmac_with(b"x"))) \
                is Refusal.ALGORITHM
        assert await refusal(verifier, jwt.encode(payload, SECRET, algorithm="HS512")) is Refusal.ALGORITHM
    finally:
        verifier.close()


async def test_bad_signatures_are_refused(jwks: Jwks) -> None:
    assert await refusal(hs_verifier(), hs256(claims(), secret=secrets.token_urlsafe(48))) is Refusal.SIGNATURE
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verifier = jwks_verifier(jwks)
    try:
        assert await refusal(verifier, rs256(claims(), key=other_rsa)) is Refusal.SIGNATURE
        # A valid token with its payload swapped for another user's.
        header, _, signature = rs256(claims()).split(".")
        swapped = f"{header}.{_b64(json.dumps(claims()).encode())}.{signature}"
        assert await refusal(verifier, swapped) is Refusal.SIGNATURE
    finally:
        verifier.close()


async def test_unknown_or_missing_key_id_is_refused(jwks: Jwks) -> None:
    verifier = jwks_verifier(jwks)
    try:
        assert await refusal(verifier, rs256(claims(), kid="rotated-away")) is Refusal.UNKNOWN_KEY
        assert await refusal(verifier, jwt.encode(claims(), RSA_KEY, algorithm="RS256")) is Refusal.UNKNOWN_KEY
    finally:
        verifier.close()


async def test_a_key_published_later_is_found_by_refetching(jwks: Jwks) -> None:
    """Key rotation: a kid not in the cached set makes one refetch."""
    verifier = jwks_verifier(jwks)
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        await verifier.verify(rs256(claims()))  # the set is cached now
        jwks.extra = [{**RSAAlgorithm.to_jwk(new_key.public_key(), as_dict=True),
                       "kid": "rsa-2", "alg": "RS256", "use": "sig"}]
        assert (await verifier.verify(rs256(p := claims(), kid="rsa-2", key=new_key))).user_id == p["sub"]
    finally:
        jwks.extra = []
        verifier.close()


async def test_missing_claims_are_refused() -> None:
    for name in ("exp", "sub", "iat", "aud", "iss"):
        reason = await refusal(hs_verifier(), hs256(claims(**{name: None})))
        assert reason is Refusal.MISSING_CLAIM, name


async def test_tokens_of_other_roles_or_subjects_are_refused() -> None:
    assert await refusal(hs_verifier(), hs256(claims(role="service_role"))) is Refusal.ROLE
    assert await refusal(hs_verifier(), hs256(claims(role="anon"))) is Refusal.ROLE
    assert await refusal(hs_verifier(), hs256(claims(sub="not-a-uuid"))) is Refusal.SUBJECT


async def test_malformed_tokens_are_refused() -> None:
    for token in ("", "abc", "a.b.c", "x" * 9000, hs256(claims()) + "$",
                  forged({"alg": "HS256", "kid": 7}, claims(), hmac_with(SECRET.encode()))):
        assert await refusal(hs_verifier(), token) is Refusal.MALFORMED


async def test_unreachable_key_server_is_retryable() -> None:
    verifier = SupabaseVerifier(issuer=ISSUER, jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json",
                                jwks_timeout_s=2)
    try:
        with pytest.raises(SupabaseTokenError) as info:
            await verifier.verify(rs256(claims()))
    finally:
        verifier.close()
    assert info.value.reason is Refusal.KEYS_UNAVAILABLE
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.retryable


async def test_failing_key_server_keeps_the_cached_set(jwks: Jwks) -> None:
    verifier = SupabaseVerifier(issuer=ISSUER, jwks_url=jwks.url, jwks_cache_s=300)
    try:
        await verifier.verify(rs256(claims()))
        jwks.failing = True
        assert await verifier.verify(rs256(claims()))  # served from the cache
    finally:
        jwks.failing = False
        verifier.close()


def test_refusals_keep_their_reason_across_processes() -> None:
    error = pickle.loads(pickle.dumps(SupabaseTokenError(Refusal.EXPIRED, "credential expired")))
    assert isinstance(error, SupabaseTokenError) and isinstance(error, PlatformError)
    assert (error.reason, error.code, error.message) == (Refusal.EXPIRED, ErrorCode.UNAUTHENTICATED,
                                                         "credential expired")


# -- configuration --------------------------------------------------------------------------------

def test_algorithms_follow_the_configuration(jwks: Jwks) -> None:
    assert SupabaseVerifier.from_settings(Settings()) is None
    only_secret = SupabaseVerifier.from_settings(Settings(supabase_jwt_secret=SECRET, supabase_jwt_issuer=ISSUER))
    only_jwks = SupabaseVerifier.from_settings(Settings(supabase_jwks_url=jwks.url, supabase_jwt_issuer=ISSUER))
    both = SupabaseVerifier.from_settings(Settings(supabase_jwt_secret=SECRET, supabase_jwks_url=jwks.url,
                                                   supabase_jwt_issuer=ISSUER))
    assert only_secret is not None and only_jwks is not None and both is not None
    assert only_secret.algorithms == {"HS256"}
    assert only_jwks.algorithms == {"RS256", "ES256"}
    assert both.algorithms == {"HS256", "RS256", "ES256"}
    for verifier in (only_secret, only_jwks, both):
        verifier.close()


def test_settings_from_the_environment() -> None:
    env = {"SUPABASE_JWT_SECRET": SECRET,
           "SUPABASE_JWKS_URL": "https://abc.supabase.co/auth/v1/.well-known/jwks.json",
           "SUPABASE_JWT_AUDIENCE": "authenticated", "INTERVIEW_SUPABASE_JWT_LEEWAY_S": "5",
           "INTERVIEW_SUPABASE_JWKS_CACHE_S": "60", "INTERVIEW_SUPABASE_JWKS_TIMEOUT_S": "2"}
    settings = Settings.from_env(env)
    assert settings.supabase_issuer == "https://abc.supabase.co/auth/v1"  # derived from the JWKS URL
    assert (settings.supabase_jwt_leeway_s, settings.supabase_jwks_cache_s, settings.supabase_jwks_timeout_s) \
        == (5.0, 60.0, 2.0)
    assert settings.redacted()["supabase_jwt_secret"] == "***"
    assert Settings.from_env(settings.to_env()) == settings
    explicit = Settings.from_env({**env, "SUPABASE_JWT_ISSUER": ISSUER})
    assert explicit.supabase_issuer == ISSUER


@pytest.mark.parametrize("changes", [
    {"supabase_jwt_secret": "too-short"},
    {"supabase_jwt_secret": SECRET},  # no issuer, none to derive
    {"supabase_jwks_url": "https://example.com/keys"},  # no issuer, none to derive
    {"supabase_jwks_url": "http://example.com/auth/v1/.well-known/jwks.json"},  # not https off loopback
    {"supabase_jwks_url": "file:///etc/passwd", "supabase_jwt_issuer": ISSUER},
    {"supabase_jwt_audience": ""},
    {"supabase_jwks_timeout_s": 0.0},
    {"supabase_jwks_cache_s": -1.0},
    {"supabase_jwt_leeway_s": -1.0},
])
def test_bad_supabase_settings_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Settings(**changes).validate()


# -- the control service: accounts verified elsewhere -------------------------------------------

async def invite(world: TenantWorld) -> invitation_service_pb2.CreateInvitationResponse:
    return await world.api.invitations.CreateInvitation(
        invitation_service_pb2.CreateInvitationRequest(candidate_id=world.candidate.id,
                                                       template_id=world.template.id), metadata=world.api.md)


async def account(database: Database, user_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(database.owner_dsn)
    try:
        return await conn.fetchrow("SELECT id, email FROM auth.users WHERE id = $1", uuid.UUID(user_id))
    finally:
        await conn.close()


async def test_redeem_creates_the_external_account_with_its_id(
        world: TenantWorld, service: Api, database: Database) -> None:
    user_id, email = str(uuid.uuid4()), f"ext-{uuid.uuid4().hex[:8]}@example.com"
    created = await invite(world)
    redeemed = await service.invitations.RedeemInvitation(invitation_service_pb2.RedeemInvitationRequest(
        token=created.token, user_id=user_id, external_account=True, external_email=email.upper()),
        metadata=service.md)
    assert redeemed.user_id == user_id and redeemed.first_redemption
    row = await account(database, user_id)
    assert row is not None and row["email"] == email
    # Without external_account an unknown account stays unknown.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.invitations.RedeemInvitation(invitation_service_pb2.RedeemInvitationRequest(
            token=(await invite(world)).token, user_id=str(uuid.uuid4())), metadata=service.md)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # external_account needs the id it is about.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.invitations.RedeemInvitation(invitation_service_pb2.RedeemInvitationRequest(
            token=(await invite(world)).token, external_account=True), metadata=service.md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and error_code_of(err.value) == "INVALID_ARGUMENT"


async def test_external_account_never_takes_over_an_email(
        world: TenantWorld, service: Api, database: Database) -> None:
    """The candidate's own account (made by a plain redemption) keeps its email; a Supabase user
    claiming the same email gets an account of its own, without the email."""
    plain = await service.invitations.RedeemInvitation(
        invitation_service_pb2.RedeemInvitationRequest(token=(await invite(world)).token), metadata=service.md)
    user_id = str(uuid.uuid4())
    redeemed = await service.invitations.RedeemInvitation(invitation_service_pb2.RedeemInvitationRequest(
        token=(await invite(world)).token, user_id=user_id, external_account=True,
        external_email=world.candidate.email), metadata=service.md)
    assert redeemed.user_id == user_id != plain.user_id
    row, own = await account(database, user_id), await account(database, plain.user_id)
    assert row is not None and row["email"] is None
    assert own is not None and own["email"] == world.candidate.email.lower()
    # An email that is not an address is left off too, not refused.
    odd = str(uuid.uuid4())
    await service.invitations.RedeemInvitation(invitation_service_pb2.RedeemInvitationRequest(
        token=(await invite(world)).token, user_id=odd, external_account=True, external_email="not an email"),
        metadata=service.md)
    row = await account(database, odd)
    assert row is not None and row["email"] is None


async def test_external_account_door_creates_only_in_our_own_table(database: Database) -> None:
    """On Supabase, auth.users belongs to Supabase Auth: the door never writes there."""
    conn = await asyncpg.connect(database.owner_dsn)
    try:
        existing = await conn.fetchval("INSERT INTO auth.users (email) VALUES ($1) RETURNING id",
                                       f"door-{uuid.uuid4().hex[:8]}@example.com")
        tx = conn.transaction()
        await tx.start()
        try:  # rolled back: the shared database keeps its schema
            await conn.execute("CREATE ROLE test_auth_admin NOLOGIN")
            await conn.execute("ALTER TABLE auth.users OWNER TO test_auth_admin")
            await conn.execute("SET LOCAL ROLE interview_service")
            missing = uuid.uuid4()
            assert await conn.fetchval("SELECT door_ensure_external_user($1, '')", missing) is False
            assert await conn.fetchval("SELECT door_ensure_external_user($1, '')", existing) is True
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetchval("SELECT count(*) FROM auth.users")  # no grant: the door only
        finally:
            await tx.rollback()
        assert await conn.fetchval("SELECT count(*) FROM auth.users WHERE id = $1", missing) == 0
    finally:
        await conn.close()


# -- end to end: the real edge configured for Supabase ------------------------------------------

@pytest.fixture(scope="module")
async def supabase_edge(live_settings: Settings, jwks: Jwks) -> AsyncIterator[RunningEdge]:
    settings = live_settings.replace(supabase_jwt_secret=SECRET, supabase_jwks_url=jwks.url,
                                     supabase_jwt_issuer=ISSUER)
    running = await start_edge(settings, warm=False)  # redemption needs no actor
    yield running
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def redeem(http: aiohttp.ClientSession, edge: RunningEdge, token: str,
                 credential: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    async with http.post(f"http://127.0.0.1:{edge.port}/v1/invitations/redeem", json={"token": token},
                         headers=headers) as resp:
        return resp.status, await resp.json()


async def bound_to(database: Database, invitation_id: str) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    conn = await asyncpg.connect(database.owner_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT i.redeemed_by_user_id, s.user_id FROM interview_invitations i"
            " LEFT JOIN interview_sessions s ON s.id = i.session_id WHERE i.id = $1", uuid.UUID(invitation_id))
    finally:
        await conn.close()
    assert row is not None
    return row["redeemed_by_user_id"], row["user_id"]


async def check_binding(http: aiohttp.ClientSession, edge: RunningEdge, database: Database, world: TenantWorld,
                        sign: Callable[[dict[str, Any]], str]) -> None:
    """A Supabase user redeems; the invitation is its account's; nobody else can take it over."""
    created = await invite(world)
    user = claims()
    status, body = await redeem(http, edge, created.token, sign(user))
    assert status == 200, body
    assert body["first_redemption"] is True
    access = edge.edge.tokens.verify(body["access_token"])
    assert (access.kind, access.user_id, access.session_id) == (ACCESS, user["sub"], body["session_id"])
    assert await bound_to(database, created.invitation.id) == (uuid.UUID(user["sub"]), uuid.UUID(user["sub"]))
    row = await account(database, user["sub"])
    assert row is not None and row["email"] == user["email"]

    # The same user again (a fresh Supabase token, as after a refresh): the same session back.
    status, again = await redeem(http, edge, created.token, sign(claims(sub=user["sub"], email=user["email"])))
    assert status == 200, again
    assert again["session_id"] == body["session_id"] and again["first_redemption"] is False
    # Our own access token for that account works as well.
    status, again = await redeem(http, edge, created.token, body["access_token"])
    assert status == 200 and again["session_id"] == body["session_id"]

    # Another Supabase user, another user's HS and RS token, and nobody: refused, binding unchanged.
    for credential in (sign(claims()), hs256(claims()), rs256(claims()), None):
        status, refused = await redeem(http, edge, created.token, credential)
        assert status == 409 and refused["error"]["code"] == "INVITATION_USED", refused
    assert await bound_to(database, created.invitation.id) == (uuid.UUID(user["sub"]), uuid.UUID(user["sub"]))


async def test_edge_redeems_for_a_supabase_hs256_user(
        supabase_edge: RunningEdge, http: aiohttp.ClientSession, database: Database, world: TenantWorld) -> None:
    await check_binding(http, supabase_edge, database, world, hs256)


async def test_edge_redeems_for_a_supabase_rs256_jwks_user(
        supabase_edge: RunningEdge, http: aiohttp.ClientSession, database: Database, world: TenantWorld) -> None:
    await check_binding(http, supabase_edge, database, world, rs256)


async def test_edge_refuses_bad_supabase_tokens_and_consumes_nothing(
        supabase_edge: RunningEdge, http: aiohttp.ClientSession, database: Database, world: TenantWorld) -> None:
    created = await invite(world)
    now = int(time.time())
    bad = [hs256(claims(exp=now - 600, iat=now - 4000)), hs256(claims(nbf=now + 600)),
           hs256(claims(aud="anon")), hs256(claims(iss="https://evil.supabase.co/auth/v1")),
           forged({"alg": "none"}, claims()),
           forged({"alg": "HS256", "kid": "rsa-1"}, claims(), hmac_with(RSA_PUBLIC_PEM)),
           hs256(claims(), secret=secrets.token_urlsafe(48)), rs256(claims(), kid="unknown")]
    for token in bad:
        status, body = await redeem(http, supabase_edge, created.token, token)
        assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED", body
    assert await bound_to(database, created.invitation.id) == (None, None)
    status, body = await redeem(http, supabase_edge, created.token, hs256(user := claims()))
    assert status == 200 and supabase_edge.edge.tokens.verify(body["access_token"]).user_id == user["sub"]


async def test_edge_without_supabase_configured_refuses_supabase_tokens(
        live_settings: Settings, http: aiohttp.ClientSession, world: TenantWorld) -> None:
    plain = await start_edge(live_settings, warm=False)
    try:
        assert plain.edge.supabase is None
        created = await invite(world)
        status, body = await redeem(http, plain, created.token, hs256(claims()))
        assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED", body
    finally:
        await plain.stop()
