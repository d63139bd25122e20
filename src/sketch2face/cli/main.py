"""`sketch2face` command-line entry point.

Each sub-command lives in its own module ``sketch2face.cli.<name>_cmd`` exposing
``register(subparsers) -> None`` (adds its parser and sets ``func``). Modules are imported lazily so
``sketch2face --help`` stays fast and a missing optional extra only affects its own command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sketch2face import __version__
from sketch2face.errors import Sketch2FaceError

#: sub-command name -> module that registers it
COMMANDS: dict[str, str] = {
    "prepare": "sketch2face.cli.prepare_cmd",
    "train": "sketch2face.cli.train_cmd",
    "generate": "sketch2face.cli.generate_cmd",
    "evaluate": "sketch2face.cli.evaluate_cmd",
    "evaluate-attributes": "sketch2face.cli.attributes_cmd",
    "evaluate-sketcher": "sketch2face.cli.sketcher_cmd",
    "gender": "sketch2face.cli.gender_cmd",
    "export": "sketch2face.cli.export_cmd",
    "serve": "sketch2face.cli.serve_cmd",
    "serve-model": "sketch2face.cli.serve_model_cmd",
    "users": "sketch2face.cli.users_cmd",
    "gallery": "sketch2face.cli.gallery_cmd",
    "verify": "sketch2face.cli.verify_cmd",
    "appeal-sheet": "sketch2face.cli.appeal_cmd",
    "backup": "sketch2face.cli.backup_cmd",
    "restore": "sketch2face.cli.restore_cmd",
    "doctor": "sketch2face.cli.doctor_cmd",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser; only the chosen sub-command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="sketch2face", description="Turn facial sketches into photo-realistic faces."
    )
    parser.add_argument("--version", action="version", version=f"sketch2face {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in (argv or []) if a in COMMANDS), None)
    for name, module_name in COMMANDS.items():
        if wanted is not None and name != wanted:
            subparsers.add_parser(name)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("sketch2face"):
                continue  # command not built yet
            sub = subparsers.add_parser(name, help=f"(unavailable: {exc})")
            sub.set_defaults(func=_missing_extra(name, exc))
            continue
        module.register(subparsers)
    return parser


def _missing_extra(name: str, exc: ModuleNotFoundError):  # type: ignore[no-untyped-def]
    def run(_args: argparse.Namespace) -> int:
        raise Sketch2FaceError(
            f"`sketch2face {name}` needs the Python package '{exc.name}', which is not installed; "
            "install the extras with `pip install 'sketch2face[all]'`."
        )

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except Sketch2FaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
