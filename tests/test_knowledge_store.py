"""The knowledge store end to end: real files, the real embedding model, embedded Qdrant on disk."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.cli import main as cli_main
from assistant.knowledge import CollectionSettings, KnowledgeError, KnowledgeService, KnowledgeStore, StoreBusy
from assistant.knowledge.store import COLLECTION_PREFIX
from assistant.protocol import FunctionCall
from assistant.session import SessionProfile
from assistant.session.tools import ToolContext
from assistant.tools import ToolRegistry
from assistant.tools.builtin.search_knowledge import search_knowledge_tool
from tests.test_knowledge_documents import make_pdf

pytestmark = pytest.mark.slow

GARDEN = """# Garden notes

## Tomatoes

Tomatoes need six hours of direct sun and deep watering twice a week.

## Compost

Turn the compost heap every fortnight; it is ready when it smells of forest soil.
"""

KETTLE_PAGES = [
    "Safety. Place the kettle on a dry, level surface away from the edge of the worktop and out of the reach of "
    "children. Never immerse the base or the cable in water, and unplug the kettle before cleaning it.\n\n"
    "Filling. Open the lid and fill the kettle with fresh cold water between the minimum and the maximum marks "
    "shown in the window. Too little water lets the element run dry; too much makes boiling water spit from the "
    "spout. Close the lid firmly until it clicks, set the kettle on its base and press the switch down. The light "
    "comes on while it heats and the kettle switches itself off when the water boils.",
    "Descaling. Hard water leaves a chalky layer of limescale on the element, which slows boiling and flakes into "
    "drinks. Every month, fill the kettle halfway with equal parts of water and white vinegar, boil it, leave it "
    "to stand for an hour, then pour it away and rinse the kettle twice with fresh water before using it again.",
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KnowledgeStore]:
    with KnowledgeStore.open(tmp_path / "store") as opened:
        yield opened


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    garden = docs / "garden.md"
    garden.write_text(GARDEN)
    kettle = make_pdf(docs / "kettle.pdf", KETTLE_PAGES, title="Kettle manual")
    return {"garden": garden, "kettle": kettle}


def _sources(store: KnowledgeStore, query: str, collection: str = "default") -> list[str]:
    return [hit.source for hit in store.search(query, collection, limit=3)]


def test_add_search_remove_round_trip_on_markdown_and_pdf(store: KnowledgeStore, files: dict[str, Path]) -> None:
    assert store.add_file(files["garden"]).status == "added"
    assert store.add_file(files["kettle"]).status == "added"
    assert {(d.name, d.kind) for d in store.documents()} == {("garden.md", "markdown"), ("kettle.pdf", "pdf")}

    hits = store.search("how do I remove limescale from the kettle?", limit=2)
    assert hits[0].source == "kettle.pdf, p. 2"
    assert "vinegar" in hits[0].text
    assert hits[0].document == str(files["kettle"].resolve())
    assert _sources(store, "when is my compost ready to use?")[0] == "garden.md, Garden notes > Compost"

    removed = store.remove("garden.md")
    assert [d.name for d in removed] == ["garden.md"]
    assert [d.name for d in store.documents()] == ["kettle.pdf"]
    assert all(source.startswith("kettle.pdf") for source in _sources(store, "when is my compost ready to use?"))
    assert store.remove("garden.md") == []


def test_same_content_is_never_indexed_twice_and_a_changed_file_replaces_its_passages(
    store: KnowledgeStore, files: dict[str, Path], tmp_path: Path
) -> None:
    garden = files["garden"]
    first = store.add_file(garden)
    assert store.add_file(garden).status == "unchanged"
    copy = tmp_path / "copy-of-garden.md"
    shutil.copy(garden, copy)
    duplicate = store.add_file(copy)
    assert (duplicate.status, duplicate.same_as) == ("duplicate", str(garden.resolve()))
    assert store.collections()[0].passages == first.passages

    garden.write_text("# Garden notes\n\nOnly basil grows here now, on the kitchen windowsill.\n")
    replaced = store.add_file(garden)
    assert (replaced.status, replaced.passages) == ("replaced", 1)
    assert store.collections()[0].passages == 1  # the old version's extra passages are gone
    texts = [hit.text for hit in store.search("tomatoes and sun", limit=5)]
    assert texts == ["Only basil grows here now, on the kitchen windowsill."]


def test_collections_keep_documents_apart_and_names_are_checked(store: KnowledgeStore, files: dict[str, Path]) -> None:
    store.add_file(files["garden"], "home")
    store.add_file(files["kettle"], "appliances")
    assert store.collection_names() == ["appliances", "home"]
    assert all(s.startswith("kettle.pdf") for s in _sources(store, "compost", "appliances"))
    with pytest.raises(KnowledgeError, match=r"no knowledge collection named 'nowhere'.*appliances, home"):
        store.search("anything", "nowhere")
    with pytest.raises(KnowledgeError, match="invalid collection name"):
        store.add_file(files["garden"], "Bad Name!")
    assert store.remove_collection("home")
    assert store.collection_names() == ["appliances"]


def test_add_text_replaces_by_key(store: KnowledgeStore) -> None:
    store.add_text("My sister's birthday is on 3 May.", "memory:1", collection="memory")
    store.add_text("My sister's birthday is on 5 May.", "memory:1", collection="memory")
    (hit,) = store.search("when is my sister's birthday?", "memory", limit=3)
    assert hit.text == "My sister's birthday is on 5 May."
    with pytest.raises(KnowledgeError, match="empty"):
        store.add_text("  ", "memory:2", collection="memory")


def test_reindex_follows_edits_keeps_text_whose_source_is_gone_and_rebuilds_for_a_new_model(
    store: KnowledgeStore, files: dict[str, Path]
) -> None:
    store.add_file(files["garden"])
    store.add_file(files["kettle"])
    files["garden"].write_text("# Garden notes\n\nPlant garlic in October.\n")
    files["kettle"].unlink()
    statuses = {Path(r.document).name: r.status for r in store.reindex()}
    assert statuses == {"garden.md": "reindexed", "kettle.pdf": "kept"}
    assert store.search("when do I plant garlic?", limit=1)[0].text == "Plant garlic in October."
    assert store.search("descaling with vinegar", limit=1)[0].source == "kettle.pdf, p. 2"

    # A collection built by another embedding model cannot be searched with this one's vectors.
    store._client.update_collection(COLLECTION_PREFIX + "default", metadata={"embedding_model": "some/other-model"})
    with pytest.raises(KnowledgeError, match=r"needs reindexing.*some/other-model"):
        store.search("garlic")
    with pytest.raises(KnowledgeError, match="reindex"):
        store.add_text("new note", "note:1")
    store.reindex("default")
    assert store.search("when do I plant garlic?", limit=1)[0].text == "Plant garlic in October."
    assert store.search("descaling with vinegar", limit=1)[0].source == "kettle.pdf, p. 2"


async def test_search_knowledge_tool_has_the_contract_shape_and_runs_off_the_event_loop(
    tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    knowledge = KnowledgeService(tmp_path / "shared")
    store = await knowledge.open_async()
    store.add_file(files["kettle"], "appliances")
    store.add_file(files["garden"])
    knowledge.configure("appliances", CollectionSettings(passages=2))
    registry = ToolRegistry()
    registry.add(search_knowledge_tool(knowledge), "builtin")
    embed_threads: list[int] = []
    embed = store.embedder.embed

    def recording_embed(texts: list[str]) -> object:
        embed_threads.append(threading.get_ident())
        return embed(texts)

    monkeypatch.setattr(store.embedder, "embed", recording_embed)

    async def search(args: dict[str, str], profile: SessionProfile | None = None) -> dict[str, Any]:
        context = ToolContext(session_id="s", send_response=lambda response: asyncio.sleep(0), profile=profile)
        response = await registry.call(FunctionCall(id="1", name="search_knowledge", args=args), context)
        assert response.response is not None
        return response.response

    appliances = SessionProfile("kitchen", knowledge_collection="appliances")
    output = (await search({"query": "how often should I descale?"}, appliances))["output"]
    assert embed_threads and threading.get_ident() not in embed_threads
    assert len(output["passages"]) == 2  # the collection's setting
    first = output["passages"][0]
    assert set(first) >= {"text", "source", "score"}
    assert first["source"] == "kettle.pdf, p. 2" and 0 < first["score"] <= 1
    # Without a profile the default collection is searched; a collection the model names wins.
    plain = (await search({"query": "when is compost ready?"}))["output"]["passages"]
    assert plain[0]["source"] == "garden.md, Garden notes > Compost"
    named = (await search({"query": "when is compost ready?", "collection": "appliances"}, None))["output"]
    assert all(p["source"].startswith("kettle.pdf") for p in named["passages"])
    # A knowledge error is the model's to read, not a crash.
    assert (await search({"query": "soup", "collection": "recipes"})) == {
        "error": "no knowledge collection named 'recipes' (collections: appliances, default)"
    }
    await knowledge.aclose()


def test_store_persists_across_processes_and_one_process_holds_the_folder(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "persistent"
    assert cli_main(["knowledge", "--store", str(folder), "add", str(files["garden"].parent)]) == 0
    assert "added" in capsys.readouterr().out
    command = [sys.executable, "-m", "assistant", "knowledge", "--store", str(folder)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    listing = subprocess.run([*command, "list"], capture_output=True, text=True, env=env, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "default: 2 documents" in listing.stdout and "kettle.pdf" in listing.stdout
    search = [*command, "search", "limescale in the kettle", "--limit", "1"]
    found = subprocess.run(search, capture_output=True, text=True, env=env, timeout=120)
    assert "kettle.pdf, p. 2" in found.stdout

    with KnowledgeStore.open(folder):
        with pytest.raises(StoreBusy, match="in use by another process"):
            KnowledgeStore.open(folder)
        busy = subprocess.run([*command, "list"], capture_output=True, text=True, env=env, timeout=120)
        assert busy.returncode == 1 and "--qdrant-url" in busy.stderr


def test_cli_reports_bad_files_and_keeps_going(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.md"
    good.write_text("# Note\n\nThe spare key is under the blue pot.\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00binary")
    folder = str(tmp_path / "store")
    assert cli_main(["knowledge", "--store", folder, "add", str(bad), str(good)]) == 1
    captured = capsys.readouterr()
    assert "skipped: bad.txt" in captured.err and "added" in captured.out
    assert cli_main(["knowledge", "--store", folder, "search", "where is the spare key?"]) == 0
    assert "blue pot" in capsys.readouterr().out
    assert cli_main(["knowledge", "--store", folder, "remove", "nothing.md"]) == 1
    assert cli_main(["knowledge", "--store", folder, "remove", "--all", "--collection", "default"]) == 0
    assert cli_main(["knowledge", "--store", folder, "list"]) == 0
    assert "no knowledge yet" in capsys.readouterr().out


def test_a_qdrant_server_that_cannot_be_reached_is_reported_at_open() -> None:
    # Only construction and the reachability check are testable here: no Qdrant server runs on this machine.
    with pytest.raises(KnowledgeError, match=r"cannot use the Qdrant server at http://127\.0\.0\.1:9"):
        KnowledgeStore.open(url="http://127.0.0.1:9")


def test_async_wrappers_share_one_store_between_concurrent_callers(
    store: KnowledgeStore, files: dict[str, Path]
) -> None:
    async def scenario() -> list[str]:
        await asyncio.gather(store.add_file_async(files["garden"]), store.add_file_async(files["kettle"]))
        results = await asyncio.gather(*(store.search_async(q, limit=1) for q in ("compost", "vinegar", "tomato sun")))
        return [hits[0].source for hits in results]

    assert asyncio.run(scenario()) == [
        "garden.md, Garden notes > Compost",
        "kettle.pdf, p. 2",
        "garden.md, Garden notes > Tomatoes",
    ]
