"""The FastAPI example of docs/PYTHON.md (python/examples/fastapi_app.py), run in process against
the compiled kernel: the principal comes from a verified token; the route returns the receipts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import re

import httpx
import pytest

import airisk
from support import ARTIFACT_SHA256, REPO_ROOT, entries, principal

EXAMPLE = REPO_ROOT / "python" / "examples" / "fastapi_app.py"
SECRET = b"test-only token secret"


def load_example():
    spec = importlib.util.spec_from_file_location("fastapi_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def token(claims: dict, secret: bytes = SECRET) -> str:
    body = json.dumps(claims).encode()
    tag = hmac.new(secret, body, hashlib.sha256).digest()
    b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")  # noqa: E731
    return f"{b64(body)}.{b64(tag)}"


ALICE = {"sub": "alice@bank.example", "tenant": "acme", "role": "admin", "kind": "human"}
BODY = {
    "name": "credit-scoring",
    "version": "1.4.0",
    "checksum": ARTIFACT_SHA256,
    "artifact_uri": "s3://models/credit-scoring/1.4.0",
    "justification": "quarterly recalibration",
}


@pytest.fixture
async def client(kernel):
    example = load_example()
    app = example.create_app(kernel, verify_token=example.hmac_verifier(SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


def bearer(claims: dict, secret: bytes = SECRET) -> dict[str, str]:
    return {"authorization": f"Bearer {token(claims, secret)}"}


async def test_a_verified_admin_registers_a_model_and_gets_the_receipts(client, kernel):
    response = await client.post("/models", json=BODY, headers={**bearer(ALICE), "x-correlation-id": "req-42"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["model"] == {"name": "credit-scoring", "version": "1.4.0", "status": "PENDING"}
    ledger = await entries(kernel, principal("alice@bank.example", airisk.Role.ADMIN))
    assert [(r["seq"], r["leaf_hash"]) for r in body["receipts"]] == [(e.seq, e.leaf_hash) for e in ledger]
    assert {(e.actor, e.correlation_id) for e in ledger} == {("alice@bank.example", "req-42")}


async def test_the_role_comes_from_the_token_and_a_refusal_is_403_and_recorded(client, kernel):
    analyst = {**ALICE, "sub": "carol@bank.example", "role": "analyst"}
    response = await client.post("/models", json=BODY, headers=bearer(analyst))
    assert response.status_code == 403 and response.json()["error"] == "denied"
    [denial] = await entries(kernel, principal("carol@bank.example", airisk.Role.ANALYST))
    assert (denial.actor, denial.outcome) == ("carol@bank.example", "denied")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Basic abc"},
        bearer(ALICE, secret=b"someone else's secret"),
        {"authorization": "Bearer not-a-token"},
    ],
    ids=["missing", "wrong-scheme", "forged", "malformed"],
)
async def test_no_verified_token_no_action(client, kernel, headers):
    response = await client.post("/models", json=BODY, headers=headers)
    assert response.status_code == 401
    assert await entries(kernel, principal("alice@bank.example", airisk.Role.ADMIN)) == ()


async def test_claims_that_name_no_valid_principal_are_refused(client):
    for claims in ({**ALICE, "role": "root"}, {**ALICE, "tenant": "ACME"}, {"sub": "alice@bank.example"}):
        assert (await client.post("/models", json=BODY, headers=bearer(claims))).status_code == 403


async def test_kernel_errors_map_onto_http_statuses(client):
    assert (await client.post("/models", json=BODY, headers=bearer(ALICE))).status_code == 201
    duplicate = await client.post("/models", json=BODY, headers=bearer(ALICE))
    assert duplicate.status_code == 409 and duplicate.json()["error"] == "already_registered"
    invalid = await client.post("/models", json={**BODY, "version": "2", "checksum": "zz"}, headers=bearer(ALICE))
    assert invalid.status_code == 422


def test_the_docs_show_the_example_that_runs_here():
    doc = (REPO_ROOT / "docs" / "PYTHON.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert EXAMPLE.read_text() in blocks, "docs/PYTHON.md must include python/examples/fastapi_app.py verbatim"
