"""The encryption wrapper: encrypt(data: str) -> str / decrypt(data: str) -> str, failing closed
without a key, with the wrong key and on any change."""

from __future__ import annotations

import pytest

import airisk


@pytest.fixture
def key_entry() -> str:
    return airisk.generate_encryption_key("k1")


@pytest.mark.parametrize("plaintext", ["sk-live-123", "", "Grüße, 世界 🔐", "x" * 100_000])
def test_round_trip(key_entry, plaintext):
    enc = airisk.EncryptionService(key_entry)
    sealed = enc.encrypt(plaintext)
    assert sealed.startswith("v1.k1.")
    if plaintext:
        assert plaintext not in sealed
    assert enc.decrypt(sealed) == plaintext


def test_each_encryption_uses_a_fresh_nonce(key_entry):
    enc = airisk.EncryptionService(key_entry)
    sealed = {enc.encrypt("same") for _ in range(100)}
    assert len(sealed) == 100


def test_the_wrong_key_fails(key_entry):
    sealed = airisk.EncryptionService(key_entry).encrypt("sk-live-123")
    same_id_other_key = airisk.EncryptionService(airisk.generate_encryption_key("k1"))
    with pytest.raises(airisk.EncryptionError) as raised:
        same_id_other_key.decrypt(sealed)
    assert raised.value.kind == "decryption_failed"
    other_id = airisk.EncryptionService(airisk.generate_encryption_key("k2"))
    with pytest.raises(airisk.EncryptionError) as raised:
        other_id.decrypt(sealed)
    assert raised.value.kind == "unknown_key_id"


def test_any_changed_character_fails(key_entry):
    enc = airisk.EncryptionService(key_entry)
    sealed = enc.encrypt("sk-live-123")
    for i in range(len("v1.k1."), len(sealed)):
        flipped = sealed[:i] + ("A" if sealed[i] != "A" else "B") + sealed[i + 1 :]
        with pytest.raises(airisk.EncryptionError):
            enc.decrypt(flipped)
    with pytest.raises(airisk.EncryptionError):
        enc.decrypt(sealed[:-1])
    with pytest.raises(airisk.EncryptionError):
        enc.decrypt("not a ciphertext")


def test_a_missing_key_fails_closed(monkeypatch):
    monkeypatch.delenv("AIRISK_ENCRYPTION_KEYS", raising=False)
    with pytest.raises(airisk.EncryptionError) as raised:
        airisk.EncryptionService()
    assert raised.value.kind == "key_missing"
    with pytest.raises(airisk.EncryptionError) as raised:
        airisk.EncryptionService("")
    with pytest.raises(airisk.EncryptionError) as raised:
        airisk.EncryptionService("k1:not-base64")
    assert raised.value.kind == "key_invalid"
    assert "not-base64" not in str(raised.value)


def test_the_key_comes_from_the_environment_when_not_given(monkeypatch, key_entry):
    monkeypatch.setenv("AIRISK_ENCRYPTION_KEYS", key_entry)
    from_env = airisk.EncryptionService()
    assert airisk.EncryptionService(key_entry).decrypt(from_env.encrypt("x")) == "x"


def test_rotation_keeps_old_values_readable(key_entry):
    old = airisk.EncryptionService(key_entry)
    sealed = old.encrypt("before rotation")
    rotated = airisk.EncryptionService(f"{airisk.generate_encryption_key('k2')},{key_entry}")
    assert rotated.primary_key_id == "k2"
    assert rotated.decrypt(sealed) == "before rotation"
    assert rotated.encrypt("after").startswith("v1.k2.")


def test_the_key_never_shows(key_entry):
    enc = airisk.EncryptionService(key_entry)
    secret = key_entry.split(":", 1)[1]
    assert secret not in repr(enc) and secret not in str(enc)


def test_a_kernel_will_not_open_without_its_keys(monkeypatch, keys):
    for var in ("AIRISK_DATABASE_URL", "AIRISK_LEDGER_SIGNING_KEY", "AIRISK_ENCRYPTION_KEYS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(airisk.ConfigurationError) as raised:
        airisk.open(database_url="memory:", ledger_signing_key=keys.signing_key)
    assert "AIRISK_ENCRYPTION_KEYS" in str(raised.value)
    with pytest.raises(airisk.ConfigurationError) as raised:
        airisk.open(database_url="memory:", encryption_keys=keys.encryption_keys)
    assert "AIRISK_LEDGER_SIGNING_KEY" in str(raised.value)
    with pytest.raises(airisk.ConfigurationError) as raised:
        airisk.open(database_url="memory:", ledger_signing_key="PRIVATE+KEY+garbage", encryption_keys="k1:AAAA")
    assert "garbage" not in str(raised.value) and "invalid" in str(raised.value)


def test_a_kernel_opens_from_the_same_environment_variables_as_the_binary(monkeypatch, keys):
    monkeypatch.setenv("AIRISK_DATABASE_URL", "memory:")
    monkeypatch.setenv("AIRISK_LEDGER_SIGNING_KEY", keys.signing_key)
    monkeypatch.setenv("AIRISK_ENCRYPTION_KEYS", keys.encryption_keys)
    kernel = airisk.open()
    assert kernel.verifier_key == keys.verifier_key
    sealed = kernel.encryption.encrypt("x")
    assert airisk.EncryptionService(keys.encryption_keys).decrypt(sealed) == "x"


def test_a_kernel_will_not_open_an_unknown_or_unusable_store(keys, tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    for url in ("mysql://localhost/airisk", "sqlite", f"sqlite://{tmp_path}/a-file/x.db"):
        with pytest.raises(airisk.ConfigurationError) as raised:
            airisk.open(database_url=url, ledger_signing_key=keys.signing_key, encryption_keys=keys.encryption_keys)
        assert raised.value.kind == "store", url
