"""``sketch2face gallery``: enrol photo galleries, list and remove them, search them, permissions.

Works on the web app's data (``--data-dir`` / ``SKETCH2FACE_*`` variables, as ``sketch2face
users``): the same database, object store and index folder, so what the CLI enrols the app
searches and the other way round. Searches from the CLI are audited like the app's
(user ``cli:<login name>``).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sketch2face.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``gallery`` with ``add``, ``list``, ``remove``, ``search``, ``grant``, ``revoke``,
    ``reindex``."""
    parser = subparsers.add_parser(
        "gallery",
        help="enrol photo galleries and search them with a likeness or a photo",
        description="Enrol photo galleries and search them. A match is a lead to check, never an "
        "identification.",
    )
    _data_dir(parser, top=True)
    actions = parser.add_subparsers(dest="gallery_action", metavar="ACTION")

    add = actions.add_parser(
        "add",
        help="enrol a folder or ZIP of photos (creates the gallery if needed; resumable)",
        description="Enrol every photo under SOURCE (a folder, searched recursively, or a ZIP): "
        "detect and align the face, embed it, store the photo and a face thumbnail. Duplicates "
        "(same file) are skipped, so running it again after an interruption resumes.",
    )
    add.add_argument("source", type=Path, help="folder or .zip of photos")
    add.add_argument("--gallery", required=True, help="gallery name (created if missing)")
    add.add_argument(
        "--several-faces",
        choices=("largest", "skip"),
        default="largest",
        help="photos with several faces: enrol the largest face (default) or skip the photo",
    )
    add.add_argument(
        "--atomic",
        action="store_true",
        help="one transaction for the whole batch (default: commit every --chunk photos, "
        "resumable)",
    )
    add.add_argument("--chunk", type=int, default=32, help="photos per commit (default 32)")
    add.add_argument("--no-progress", action="store_true", help="no progress bar")
    add.add_argument("--json", action="store_true", help="print the report as JSON")
    add.set_defaults(func=run_add)
    _data_dir(add)

    listing = actions.add_parser("list", help="list galleries with photo and face counts")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)
    _data_dir(listing)

    remove = actions.add_parser("remove", help="remove a gallery, or one photo of it")
    remove.add_argument("gallery", help="gallery name")
    remove.add_argument("--photo", default=None, help="remove only the photo with this file name")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(func=run_remove)
    _data_dir(remove)

    search = actions.add_parser(
        "search", help="search a gallery with a face image (a generated likeness or a photo)"
    )
    search.add_argument("image", type=Path, help="query image")
    search.add_argument("--gallery", required=True, help="gallery name")
    search.add_argument("--top", type=int, default=10, help="candidates to list (default 10)")
    search.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list, best first: rank, file_name, score, distance, photo_id",
    )
    search.add_argument(
        "--whole-image",
        action="store_true",
        help="if no face is detected, use the whole image as the face (for generated faces, "
        "which are face crops already)",
    )
    search.add_argument(
        "--exact", action="store_true", help="exact search even for large galleries"
    )
    search.set_defaults(func=run_search)
    _data_dir(search)

    grant = actions.add_parser("grant", help="let an account search galleries in the web app")
    grant.add_argument("username")
    grant.set_defaults(func=run_grant)
    _data_dir(grant)
    revoke = actions.add_parser("revoke", help="take the search permission away")
    revoke.add_argument("username")
    revoke.set_defaults(func=run_revoke)
    _data_dir(revoke)

    reindex = actions.add_parser(
        "reindex", help="build a gallery's vector index now (it is also built on demand)"
    )
    reindex.add_argument("gallery")
    reindex.set_defaults(func=run_reindex)
    _data_dir(reindex)
    parser.set_defaults(func=lambda _a: parser.print_help() or 2)


def _data_dir(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``--data-dir`` before or after the action."""
    if top:
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="data folder of `sketch2face serve` (default ./instance or SKETCH2FACE_DATA_DIR)",
        )
    else:
        parser.add_argument(
            "--data-dir", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


@dataclass
class _Context:
    session: Any
    store: Any
    searcher: Any
    actor: str


@contextmanager
def _context(args: argparse.Namespace) -> Iterator[_Context]:
    """The app's database (migrated), object store and gallery searcher, without a web app."""
    from sqlalchemy.orm import Session

    from sketch2face.db.engine import make_engine, upgrade_database
    from sketch2face.gallery.faces import default_encoder
    from sketch2face.gallery.index import GalleryIndexes
    from sketch2face.gallery.search import GalleryConfig, GallerySearcher
    from sketch2face.storage import open_store
    from sketch2face.web.settings import WebSettings

    if not getattr(args, "verbose", False):
        logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration step
    settings = WebSettings.from_env()
    if args.data_dir is not None:
        settings = settings.replace(data_dir=args.data_dir)
    config = GalleryConfig.from_env()
    engine = make_engine(settings.resolved_database_url)
    try:
        if settings.auto_migrate:
            upgrade_database(engine)
        store = open_store(settings.resolved_storage_url, options=settings.storage_options())
        indexes = GalleryIndexes(
            settings.data_dir.resolve() / "gallery-index",
            backend=config.index_backend,
            exact_below=config.exact_below,
            background=False,
        )
        with Session(engine, expire_on_commit=False) as session:
            yield _Context(session, store, GallerySearcher(indexes, default_encoder), _actor())
    finally:
        engine.dispose()


def _actor() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return f"cli:{name}"[:64]


def _audit(ctx: _Context, action: str, **detail: Any) -> None:
    from sketch2face.services import audit

    audit.record(ctx.session, action, None, username=ctx.actor, via="cli", **detail)


def _sources(path: Path) -> list[Any]:
    from sketch2face.gallery.zipsafe import ArchiveLimits, folder_entries, zip_entries

    if path.is_dir():
        return folder_entries(path)
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(4)
        from sketch2face.gallery.zipsafe import is_zip

        if not is_zip(head):
            raise ConfigError(f"{path} is neither a folder nor a ZIP file.")
        # a local admin's archive: generous limits, but still no bombs or traversal
        return zip_entries(
            path, ArchiveLimits(max_entries=2_000_000, max_total_bytes=256 * 1024**3)
        )
    raise ConfigError(f"{path}: no such folder or file.")


def run_add(args: argparse.Namespace) -> int:
    """Enrol a folder or ZIP."""
    from tqdm import tqdm

    from sketch2face.gallery.enrol import EnrolOptions, enrol_files
    from sketch2face.gallery.store import get_or_create_gallery
    from sketch2face.services import audit

    files = _sources(args.source)
    if args.chunk < 1:
        raise ConfigError("--chunk must be at least 1.")
    options = EnrolOptions(
        several_faces=args.several_faces, atomic=args.atomic, chunk_size=args.chunk
    )
    with _context(args) as ctx:
        gallery, created = get_or_create_gallery(ctx.session, args.gallery, created_by=ctx.actor)
        if created:
            print(f"created gallery '{gallery.name}'", file=sys.stderr)
        bar = tqdm(
            total=len(files), unit="photo", desc=f"enrol {gallery.name}", disable=args.no_progress
        )

        def progress(_source: Any, report: Any) -> None:
            bar.set_postfix(enrolled=report.enrolled, skipped=len(report.skipped), refresh=False)
            bar.update(1)

        def audit_batch(session: Any, report: Any) -> None:
            _audit(
                ctx,
                audit.GALLERY_ENROL,
                gallery=gallery.name,
                batch_id=report.batch_id,
                files=report.files,
                enrolled=report.enrolled,
                skipped=report.counts,
            )

        try:
            report = enrol_files(
                ctx.session,
                ctx.store,
                gallery,
                files,
                ctx.searcher.encoder,
                options=options,
                enrolled_by=ctx.actor,
                progress=progress,
                before_commit=audit_batch if args.atomic else None,
            )
        finally:
            bar.close()
        if not args.atomic:
            audit_batch(ctx.session, report)
            ctx.session.commit()
        index = _refresh_index(ctx, gallery.name)
        if args.json:
            print(json.dumps(report.as_json() | {"index": index}, indent=2))
        else:
            print(f"{gallery.name}: {report.summary()} in {report.seconds:.1f} s")
            for name, reason in report.skipped[:50]:
                print(f"  skipped {name}: {reason}")
            if len(report.skipped) > 50:
                print(f"  ... and {len(report.skipped) - 50} more (--json lists them all)")
            print(f"index: {index}")
    return 0


def _refresh_index(ctx: _Context, name: str) -> str:
    """Build the gallery's index for its current version now; describe it."""
    import sqlalchemy as sa

    from sketch2face.db.gallery import Gallery
    from sketch2face.gallery.store import get_gallery, load_snapshot

    gallery = get_gallery(ctx.session, name)
    encoder = ctx.searcher.encoder
    version = ctx.session.scalar(sa.select(Gallery.version).where(Gallery.id == gallery.id))
    index = ctx.searcher.indexes.get(
        gallery.id,
        int(version or 0),
        encoder.name,
        lambda: load_snapshot(ctx.session, gallery.id, encoder.name, encoder.dim),
        wait=True,
    )
    return f"{index.kind} over {len(index)} faces (version {version})"


def run_list(args: argparse.Namespace) -> int:
    """Print galleries."""
    from sketch2face.gallery.store import list_galleries

    with _context(args) as ctx:
        rows = list_galleries(ctx.session, ctx.searcher.encoder.name)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "name": r.name,
                            "description": r.description,
                            "photos": r.photos,
                            "faces": r.faces,
                            "version": r.version,
                            "updated_at": r.updated_at.isoformat(),
                        }
                        for r in rows
                    ],
                    indent=2,
                )
            )
            return 0
        if not rows:
            print("no galleries; enrol one with `sketch2face gallery add DIR --gallery NAME`")
        for r in rows:
            print(
                f"{r.name}\t{r.photos} photos\t{r.faces} faces\tversion {r.version}\t"
                f"updated {r.updated_at:%Y-%m-%d %H:%M}"
            )
    return 0


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError("add --yes to confirm (no terminal to ask on).")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise ConfigError("cancelled.")


def run_remove(args: argparse.Namespace) -> int:
    """Remove a gallery or one of its photos."""
    from sketch2face.gallery.store import find_photo, get_gallery, remove_gallery, remove_photo
    from sketch2face.services import audit

    with _context(args) as ctx:
        gallery = get_gallery(ctx.session, args.gallery)
        if args.photo is not None:
            photo = find_photo(ctx.session, gallery, args.photo)
            if photo is None:
                raise ConfigError(f"gallery '{gallery.name}' has no photo named {args.photo!r}.")
            _confirm(f"remove {photo.file_name} from '{gallery.name}'?", args.yes)
            _audit(
                ctx,
                audit.GALLERY_PHOTO_REMOVE,
                gallery=gallery.name,
                photo_id=photo.id,
                file_name=photo.file_name,
            )
            remove_photo(ctx.session, ctx.store, gallery, photo)
            print(f"removed {photo.file_name} from '{gallery.name}'")
            return 0
        _confirm(f"remove gallery '{gallery.name}' with all its photos?", args.yes)
        gallery_id, name = gallery.id, gallery.name
        _audit(ctx, audit.GALLERY_REMOVE, gallery=name)
        removed = remove_gallery(ctx.session, ctx.store, gallery)
        ctx.searcher.indexes.forget(gallery_id)
        print(f"removed gallery '{name}' ({removed} photos)")
    return 0


def run_search(args: argparse.Namespace) -> int:
    """Search a gallery with an image; audited."""
    from sketch2face.gallery import CAVEAT
    from sketch2face.gallery.errors import GalleryError
    from sketch2face.gallery.search import check_top_k
    from sketch2face.imaging import load_image
    from sketch2face.services import audit

    try:
        top_k = check_top_k(args.top)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    image_u8 = load_image(args.image)
    with _context(args) as ctx:
        query = {"kind": "file", "file_name": str(args.image)[:255]}
        try:
            outcome = ctx.searcher.search(
                ctx.session,
                args.gallery,
                image_u8,
                top_k=top_k,
                allow_whole_image=args.whole_image,
                exact=args.exact,
            )
        except GalleryError as exc:
            ctx.session.rollback()
            _audit(
                ctx,
                audit.GALLERY_SEARCH,
                gallery=args.gallery[:64],
                query=query,
                error=str(exc)[:300],
            )
            ctx.session.commit()
            raise
        _audit(
            ctx,
            audit.GALLERY_SEARCH,
            gallery=outcome.gallery,
            gallery_version=outcome.gallery_version,
            gallery_faces=outcome.gallery_faces,
            method=outcome.method,
            embedder=outcome.embedder,
            top_k=outcome.top_k,
            query=query
            | {
                "faces_detected": outcome.query.faces_detected,
                "whole_image": outcome.query.whole_image,
            },
            results=[h.as_json() for h in outcome.hits],
            notices=outcome.notices or None,
        )
        ctx.session.commit()
        print(f"caveat: {CAVEAT}", file=sys.stderr)
        for notice in outcome.notices:
            print(f"notice: {notice}", file=sys.stderr)
        if args.json:
            print(json.dumps([h.as_json() for h in outcome.hits], indent=2))
            return 0
        print(f"{outcome.gallery} ({outcome.gallery_faces} faces, {outcome.method} search)")
        print(f"{'rank':>4}  {'score':>5}  {'distance':>8}  file")
        for h in outcome.hits:
            print(f"{h.rank:>4}  {h.score:5.2f}  {h.distance:8.4f}  {h.file_name}")
    return 0


def _user(ctx: _Context, username: str) -> Any:
    import sqlalchemy as sa

    from sketch2face.db.models import User
    from sketch2face.services.accounts import normalise_username

    user = ctx.session.scalar(sa.select(User).where(User.username == normalise_username(username)))
    if user is None:
        raise ConfigError(f"there is no account {username!r}; `sketch2face users list` shows them.")
    return user


def run_grant(args: argparse.Namespace) -> int:
    """Give an account the search permission."""
    from sketch2face.gallery.store import grant_search
    from sketch2face.services import audit

    with _context(args) as ctx:
        user = _user(ctx, args.username)
        if grant_search(ctx.session, user, ctx.actor):
            _audit(ctx, audit.GALLERY_GRANT, target=user.username)
            ctx.session.commit()
            print(f"'{user.username}' may now search galleries")
        else:
            print(f"'{user.username}' could search galleries already")
        if user.is_admin:
            print("(administrators may always search)")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    """Take the search permission away."""
    from sketch2face.gallery.store import revoke_search
    from sketch2face.services import audit

    with _context(args) as ctx:
        user = _user(ctx, args.username)
        if revoke_search(ctx.session, user):
            _audit(ctx, audit.GALLERY_REVOKE, target=user.username)
            ctx.session.commit()
            print(f"'{user.username}' may no longer search galleries")
        else:
            print(f"'{user.username}' had no search permission")
        if user.is_admin:
            print("(administrators may always search: change the role to take it away)")
    return 0


def run_reindex(args: argparse.Namespace) -> int:
    """Build the index of a gallery now."""
    with _context(args) as ctx:
        print(f"{args.gallery}: {_refresh_index(ctx, args.gallery)}")
    return 0
