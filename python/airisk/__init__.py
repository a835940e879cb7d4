"""The ai-risk-engine governance & security kernel, in process.

``import airisk`` gives the specification's classes (``AuditLogger``, ``ModelRegistry``,
``PromptRegistry``, ``ApprovalWorkflow``, ``RBACService``, ``TenantContext``, the encryption
wrapper ``EncryptionService``) backed by the Rust kernel (airisk-core) over the same stores and the
same ledger as the ``airisk`` binary. Nothing is global: ``airisk.open(...)`` returns a ``Kernel``
that owns its store, keys and runtime and hands out the services. See docs/PYTHON.md.
"""

from __future__ import annotations

import enum
from importlib.metadata import PackageNotFoundError, version as _version

from airisk._airisk import (
    AiriskError,
    ApprovalError,
    ApprovalRequest,
    ApprovalWorkflow,
    AuditEntry,
    AuditError,
    AuditLogger,
    AuditReceipt,
    AuthorizationError,
    ConfigurationError,
    Decision,
    DeploymentDecision,
    EncryptionError,
    EncryptionService,
    Kernel,
    LabelMove,
    ModelRegistry,
    ModelRegistryError,
    ModelVersion,
    Principal,
    PromptChange,
    PromptRegistry,
    PromptRegistryError,
    PromptVersion,
    RBACService,
    Registration,
    StoreError,
    TenantContext,
    TenantIsolationError,
    ValidationError,
    VerifyReport,
    generate_encryption_key,
    generate_ledger_key,
    open,
)


class Role(enum.Enum):
    """A principal's role: the rows of the seed's RBAC matrix. Values are the canonical strings
    the kernel parses exactly (``"Admin"`` or ``"root"`` is an ``AuthorizationError``)."""

    ADMIN = "admin"
    ANALYST = "analyst"
    APPROVER = "approver"
    VIEWER = "viewer"


try:
    __version__ = _version("airisk")
except PackageNotFoundError:  # pragma: no cover - only when imported from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "AiriskError",
    "ApprovalError",
    "ApprovalRequest",
    "ApprovalWorkflow",
    "AuditEntry",
    "AuditError",
    "AuditLogger",
    "AuditReceipt",
    "AuthorizationError",
    "ConfigurationError",
    "Decision",
    "DeploymentDecision",
    "EncryptionError",
    "EncryptionService",
    "Kernel",
    "LabelMove",
    "ModelRegistry",
    "ModelRegistryError",
    "ModelVersion",
    "Principal",
    "PromptChange",
    "PromptRegistry",
    "PromptRegistryError",
    "PromptVersion",
    "RBACService",
    "Registration",
    "Role",
    "StoreError",
    "TenantContext",
    "TenantIsolationError",
    "ValidationError",
    "VerifyReport",
    "generate_encryption_key",
    "generate_ledger_key",
    "open",
]
