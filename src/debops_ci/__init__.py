"""debops-ci: build Debian packages in CI and publish them into a signed APT archive.

The public API is what `__all__` names; everything else is internal and may change.

```python
from debops_ci import ArchiveOptions, SigningKey, SuiteSettings, open_archive, publish

options = ArchiveOptions(key=SigningKey(private_key=armored_key))
with open_archive("s3://my-deb-archive", options, writable=True) as archive:
    result = publish(archive, SuiteSettings(suite="unstable"), [Path("hello_1.0_amd64.deb")])
```

Names are imported on first use (PEP 562), so `import debops_ci` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from debops_ci.archive.gc import GcResult, gc
    from debops_ci.archive.listing import ListedPackage, list_packages
    from debops_ci.archive.maintenance import SuiteCare, repair, resign
    from debops_ci.archive.opening import ArchiveOptions, SigningKey, open_archive
    from debops_ci.archive.phase import phase
    from debops_ci.archive.promote import PromoteResult, promote
    from debops_ci.archive.prune import PrunePolicy, PruneResult, prune
    from debops_ci.archive.publish import PublishResult, publish
    from debops_ci.archive.remove import PackageSpec, RemoveResult, remove
    from debops_ci.archive.session import Archive
    from debops_ci.archive.settings import SuiteSettings
    from debops_ci.archive.transaction import Outcome
    from debops_ci.archive.verify import Finding, VerifyReport, verify
    from debops_ci.errors import (
        ArchiveIntegrityError,
        BuildError,
        ConflictError,
        DebopsError,
        LockTimeoutError,
        PackageError,
        SigningError,
        StorageError,
        UsageError,
    )
    from debops_ci.storage import LocalStore, MemoryStore, S3Store, Store

_WHERE = {
    "promote": "debops_ci.archive.promote",
    "PromoteResult": "debops_ci.archive.promote",
    "prune": "debops_ci.archive.prune",
    "PrunePolicy": "debops_ci.archive.prune",
    "PruneResult": "debops_ci.archive.prune",
    "gc": "debops_ci.archive.gc",
    "GcResult": "debops_ci.archive.gc",
    "phase": "debops_ci.archive.phase",
    "repair": "debops_ci.archive.maintenance",
    "resign": "debops_ci.archive.maintenance",
    "SuiteCare": "debops_ci.archive.maintenance",
    "Archive": "debops_ci.archive.session",
    "ArchiveOptions": "debops_ci.archive.opening",
    "SigningKey": "debops_ci.archive.opening",
    "open_archive": "debops_ci.archive.opening",
    "SuiteSettings": "debops_ci.archive.settings",
    "publish": "debops_ci.archive.publish",
    "PublishResult": "debops_ci.archive.publish",
    "remove": "debops_ci.archive.remove",
    "PackageSpec": "debops_ci.archive.remove",
    "RemoveResult": "debops_ci.archive.remove",
    "list_packages": "debops_ci.archive.listing",
    "ListedPackage": "debops_ci.archive.listing",
    "verify": "debops_ci.archive.verify",
    "VerifyReport": "debops_ci.archive.verify",
    "Finding": "debops_ci.archive.verify",
    "Outcome": "debops_ci.archive.transaction",
    "Store": "debops_ci.storage",
    "LocalStore": "debops_ci.storage",
    "MemoryStore": "debops_ci.storage",
    "S3Store": "debops_ci.storage",
    "DebopsError": "debops_ci.errors",
    "UsageError": "debops_ci.errors",
    "ConflictError": "debops_ci.errors",
    "ArchiveIntegrityError": "debops_ci.errors",
    "LockTimeoutError": "debops_ci.errors",
    "StorageError": "debops_ci.errors",
    "SigningError": "debops_ci.errors",
    "PackageError": "debops_ci.errors",
    "BuildError": "debops_ci.errors",
}

__all__ = [
    "Archive",
    "ArchiveIntegrityError",
    "ArchiveOptions",
    "BuildError",
    "ConflictError",
    "DebopsError",
    "Finding",
    "GcResult",
    "ListedPackage",
    "LocalStore",
    "LockTimeoutError",
    "MemoryStore",
    "Outcome",
    "PackageError",
    "PackageSpec",
    "PromoteResult",
    "PrunePolicy",
    "PruneResult",
    "PublishResult",
    "RemoveResult",
    "S3Store",
    "SigningError",
    "SigningKey",
    "StorageError",
    "Store",
    "SuiteCare",
    "SuiteSettings",
    "UsageError",
    "VerifyReport",
    "__version__",
    "gc",
    "list_packages",
    "open_archive",
    "phase",
    "promote",
    "prune",
    "publish",
    "remove",
    "repair",
    "resign",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'debops_ci' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
