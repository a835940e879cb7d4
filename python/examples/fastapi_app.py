"""A FastAPI service on the airisk kernel: the principal comes from a verified token, never from
the request body; the route registers a model and returns the audit receipts.

Run it with `uvicorn` (`create_app(airisk.open(), verify_token=...)`); the test suite runs it
in process (tests/unit/governance/test_fastapi_example.py).
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations at runtime, and
# the dependency below is a local name it could not resolve from a string.
import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import airisk

# Verified claims of a bearer token. Any verifier fits: PyJWT against your identity provider's
# JWKS in production; `hmac_verifier` below keeps the example free of extra dependencies.
TokenVerifier = Callable[[str], Mapping[str, Any]]


class InvalidToken(Exception):
    """The token is malformed, forged or expired."""


def hmac_verifier(secret: bytes) -> TokenVerifier:
    """Tokens of the form base64url(claims JSON) "." base64url(HMAC-SHA256(secret, claims))."""

    def verify(token: str) -> Mapping[str, Any]:
        body, _, tag = token.partition(".")
        try:
            claims_json = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            given = base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4))
        except ValueError as e:
            raise InvalidToken("malformed token") from e
        wanted = hmac.new(secret, claims_json, hashlib.sha256).digest()
        if not hmac.compare_digest(given, wanted):
            raise InvalidToken("bad signature")
        claims = json.loads(claims_json)
        if not isinstance(claims, dict):
            raise InvalidToken("claims are not an object")
        return claims

    return verify


class RegisterModelBody(BaseModel):
    name: str
    version: str
    checksum: str
    artifact_uri: str
    justification: str


# How the kernel's typed errors map onto HTTP. Another tenant's resource answers like a missing
# one (404), so a caller cannot probe other tenants.
STATUS_BY_KIND = {"not_found": 404, "already_registered": 409, "already_exists": 409, "conflict": 409, "not_pending": 409}


def create_app(kernel: airisk.Kernel, verify_token: TokenVerifier) -> FastAPI:
    app = FastAPI(title="model registry on airisk")

    def current_principal(authorization: Annotated[str | None, Header()] = None) -> airisk.Principal:
        """The FastAPI dependency: a Principal built only from verified claims."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "bearer token required", headers={"WWW-Authenticate": "Bearer"})
        try:
            claims = verify_token(token)
        except InvalidToken:
            raise HTTPException(401, "invalid token", headers={"WWW-Authenticate": "Bearer"}) from None
        try:
            return airisk.Principal(
                actor=str(claims["sub"]),
                tenant_id=str(claims["tenant"]),
                role=str(claims["role"]),
                # A person only when the token positively says so (the `kind` claim the airisk
                # server reads); a token without it is a service, and services never approve.
                human=claims.get("kind") == "human",
            )
        except (KeyError, airisk.AiriskError):
            raise HTTPException(403, "the token does not name a valid principal") from None

    @app.exception_handler(airisk.AiriskError)
    async def kernel_error(_request: Request, error: airisk.AiriskError) -> JSONResponse:
        if isinstance(error, airisk.AuthorizationError):
            status = 403
        elif isinstance(error, airisk.TenantIsolationError):
            status = 404
        elif isinstance(error, airisk.ValidationError):
            status = 422
        else:
            status = STATUS_BY_KIND.get(error.kind, 500)
        detail = str(error) if status < 500 else "internal error"
        return JSONResponse({"error": error.kind, "detail": detail}, status_code=status)

    @app.post("/models", status_code=201)
    async def register_model(
        body: RegisterModelBody,
        principal: Annotated[airisk.Principal, Depends(current_principal)],
        x_correlation_id: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        registration = await kernel.model_registry.register_model(
            actor=principal,
            name=body.name,
            version=body.version,
            checksum=body.checksum,
            artifact_uri=body.artifact_uri,
            justification=body.justification,
            correlation_id=x_correlation_id,
        )
        return {
            "model": {
                "name": registration.model.name,
                "version": registration.model.version,
                "status": registration.model.status,
            },
            "approval_request_id": registration.request.id,
            "receipts": [
                {"tenant_id": r.tenant_id, "seq": r.seq, "leaf_hash": r.leaf_hash, "recorded_at": r.recorded_at.isoformat()}
                for r in registration.receipts
            ],
        }

    return app
