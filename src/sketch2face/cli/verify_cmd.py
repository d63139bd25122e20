"""``sketch2face verify FILE``: is an exported PNG or PDF valid, tampered or unsigned?

Exit status: 0 valid (signed by a trusted key), 1 tampered, 2 unsigned, 3 the file or key could not
be checked (missing, unreadable, neither PNG/PDF nor an image), 4 signature intact but the signer
not trusted (no trusted key at hand: anyone can re-sign a changed file with a key of their own).
argparse usage errors also exit 2.

The trusted key is ``--public-key PEM`` if given, else the key of the instance data folder
(``--key-dir``, default ``$SKETCH2FACE_DATA_DIR`` or ``./instance``) when it has one; without
either, only the key carried in the file is used, and the output says so. With the data folder,
the keys it signed with before a rotation (``provenance_keys/``) count too: such a file is
``VALID, SIGNED BY AN EARLIER KEY OF THIS INSTANCE`` (exit 0), not tampered.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sketch2face.errors import ProvenanceError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EXIT_VALID, EXIT_TAMPERED, EXIT_UNSIGNED, EXIT_CANNOT_CHECK = 0, 1, 2, 3
EXIT_UNTRUSTED = 4
#: what the output calls a file whose signature holds only against the key it carries
UNTRUSTED_VERDICT = "signature intact, signer not trusted"
DATA_DIR_ENV = "SKETCH2FACE_DATA_DIR"


def default_key_dir() -> Path:
    """The web instance data folder: ``$SKETCH2FACE_DATA_DIR`` or ``./instance``."""
    return Path(os.environ.get(DATA_DIR_ENV) or "instance")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``verify`` sub-command."""
    p = subparsers.add_parser(
        "verify",
        help="check the signed provenance of an exported PNG or appeal-sheet PDF",
        description="Say whether FILE is valid (with its provenance), tampered or unsigned. "
        "Exit status: 0 valid (signed by a trusted key), 1 tampered, 2 unsigned, "
        "3 cannot check, 4 signature intact but signer not trusted (no trusted key given).",
    )
    p.add_argument("file", type=Path, help="exported face PNG or appeal-sheet PDF")
    p.add_argument(
        "--public-key",
        type=Path,
        help="the issuing instance's public key (provenance_ed25519.pub.pem from its data folder)",
    )
    p.add_argument(
        "--key-dir",
        type=Path,
        help="instance data folder whose key to trust when --public-key is not given "
        f"(default ${DATA_DIR_ENV} or ./instance)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Verify one file and print the verdict; returns the exit status."""
    from sketch2face.provenance import (
        PUBLIC_KEY_FILENAME,
        earlier_public_keys,
        instance_public_key,
        load_public_key,
        short_key_id,
        verify_file,
    )

    trusted: Ed25519PublicKey | None
    earlier: list[Ed25519PublicKey] = []
    try:
        if args.public_key is not None:
            trusted = load_public_key(args.public_key)
            trusted_from = str(args.public_key)
        else:
            key_dir = args.key_dir or default_key_dir()
            trusted = instance_public_key(key_dir)
            trusted_from = str(key_dir / PUBLIC_KEY_FILENAME)
            # keys the instance signed with before a rotation (provenance_keys/)
            earlier = earlier_public_keys(key_dir) if trusted is not None else []
        result = verify_file(args.file, trusted, earlier_keys=earlier)
    except ProvenanceError as exc:
        print(f"cannot check: {exc}")
        return EXIT_CANNOT_CHECK

    # intact against the key the file carries, but no trusted key to say who that is
    untrusted = result.is_valid and trusted is None
    if args.json:
        verdict = {"verdict": UNTRUSTED_VERDICT} if untrusted else {}
        print(json.dumps({**result.to_dict(), **verdict, "file": str(args.file)}, indent=2))
    else:
        verdict = UNTRUSTED_VERDICT if untrusted else result.status
        if result.earlier_key:
            verdict += ", signed by an earlier key of this instance"
        print(f"{verdict.upper()}: {args.file}")
        print(f"  {result.reason}")
        if result.metadata is not None:
            heading = "provenance" if result.is_valid else "claimed provenance (NOT trustworthy)"
            print(f"  {heading}:")
            for label, value in result.metadata.summary_lines():
                print(f"    {label + ':':<24}{value}")
        if trusted is not None:
            print(f"  trusted key: {trusted_from} (key id {short_key_id(trusted)})")
        elif result.status != "unsigned":
            print(
                "  no trusted key given: pass --public-key with the issuing instance's "
                f"{PUBLIC_KEY_FILENAME} to check who signed"
            )
    if untrusted:
        return EXIT_UNTRUSTED
    return {"valid": EXIT_VALID, "tampered": EXIT_TAMPERED}.get(result.status, EXIT_UNSIGNED)
