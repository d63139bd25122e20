"""``sketch2face appeal-sheet FACE.png --case NUMBER -o sheet.pdf``: a signed, printable A4 appeal.

The contact line comes from ``--contact`` or ``$SKETCH2FACE_APPEAL_CONTACT``. The sheet is signed
with the instance key in ``--key-dir`` (default ``$SKETCH2FACE_DATA_DIR`` or ``./instance``; made
there on first use). A face that carries signed provenance is checked first: a tampered face, or
one signed for another case, is refused; its model and generation go into the sheet's provenance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sketch2face.cli.verify_cmd import default_key_dir
from sketch2face.errors import AppealSheetError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``appeal-sheet`` sub-command."""
    p = subparsers.add_parser(
        "appeal-sheet",
        help="make a signed, printable A4 appeal sheet (PDF, optional PNG preview) from a face",
    )
    p.add_argument("face", type=Path, help="the chosen likeness (PNG, ideally a signed export)")
    p.add_argument("--case", required=True, help="case number printed on the sheet")
    p.add_argument("-o", "--out", type=Path, required=True, help="output PDF path")
    p.add_argument(
        "--description", default="", help="description for the public (attributes, notes)"
    )
    p.add_argument(
        "--contact",
        help="who to contact, e.g. 'Incident room: 0123 456 789' "
        "(default $SKETCH2FACE_APPEAL_CONTACT)",
    )
    p.add_argument("--preview", type=Path, help="also write a PNG preview of the page")
    p.add_argument(
        "--key-dir",
        type=Path,
        help="instance data folder holding the signing key (default $SKETCH2FACE_DATA_DIR or ./instance)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        help="the model that made an unsigned face, recorded in the provenance (name + SHA-256)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build, sign and write the sheet."""
    from sketch2face.appeal import AppealSheet, contact_from_env, make_appeal_sheet
    from sketch2face.provenance import (
        KIND_FACE,
        SIGNING_KEY_FILENAME,
        ensure_signing_key,
        short_key_id,
        verify_file,
        weights_sha256,
    )

    sheet = AppealSheet(  # checked first: a missing contact line fails before anything is written
        case_number=args.case,
        contact=args.contact if args.contact is not None else contact_from_env(),
        description=args.description,
    ).cleaned()
    key_dir = args.key_dir or default_key_dir()
    is_new_key = not (key_dir / SIGNING_KEY_FILENAME).exists()
    key = ensure_signing_key(key_dir)
    if is_new_key:
        print(
            f"created the signing key {key_dir / SIGNING_KEY_FILENAME} (key id {short_key_id(key)})"
        )

    face = verify_file(args.face, key.public_key()) if args.face.suffix.lower() == ".png" else None
    model_id = model_sha256 = generation_id = None
    if face is not None and face.status == "tampered":
        raise AppealSheetError(
            f"{args.face} carries a broken signature ({face.reason}); export the face again "
            "from sketch2face."
        )
    if face is not None and face.is_valid and face.metadata is not None:
        meta = face.metadata
        if meta.kind != KIND_FACE:
            raise AppealSheetError(
                f"{args.face} is a signed {meta.kind}, not a face; give the face PNG."
            )
        if meta.case_number and meta.case_number != sheet.case_number:
            raise AppealSheetError(
                f"{args.face} was signed for case {meta.case_number}, not {args.case}; "
                f"use --case {meta.case_number} or the face of case {args.case}."
            )
        model_id, model_sha256, generation_id = meta.model_id, meta.model_sha256, meta.generation_id
    elif args.checkpoint is not None:
        model_id, model_sha256 = args.checkpoint.name, weights_sha256(args.checkpoint)
    else:
        print(
            f"note: {args.face} carries no signed provenance; the sheet records the model as "
            "'not recorded' (pass --checkpoint to name it)"
        )

    files = make_appeal_sheet(
        args.face,
        sheet,
        key,
        model_id=model_id,
        model_sha256=model_sha256,
        generation_id=generation_id,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(files.pdf)
    print(f"wrote {args.out} (A4, signed with key {short_key_id(key)})")
    if args.preview is not None:
        args.preview.parent.mkdir(parents=True, exist_ok=True)
        args.preview.write_bytes(files.preview_png)
        print(f"wrote {args.preview} (preview, signed)")
    return 0
