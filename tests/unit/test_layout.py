"""The layout's contract, read from the code's imports: `models/` outside `models/db/` is
pure (no database, no environment, no network), `models/` imports neither `receiver/` nor
`workers/`, `receiver/` never imports `workers/`, and the handlers (`workers/handlers/`) never
import the books they are given (`workers/books.py`) nor the database modules (`models/db/`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_PACKAGES = {
    "sqlalchemy",
    "alembic",
    "asyncpg",
    "psycopg",
    "aiosqlite",
    "redis",
    "celery",
    "kombu",
    "httpx",
    "smtplib",
    "socket",
    "pydantic_settings",
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def attributes_of(path: Path) -> set[str]:
    """`name.attribute` for every attribute read off a plain name (os.environ, …)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        f"{node.value.id}.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    }


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


PURE = [path for path in modules("models") if path.relative_to(ROOT).parts[1] != "db"]


def names(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


@pytest.mark.parametrize("path", PURE, ids=names(PURE))
def test_pure_models_do_no_io(path: Path) -> None:
    used = imports_of(path)
    io = {name for name in used if name.split(".")[0] in IO_PACKAGES}
    database = {name for name in used if name.startswith("models.db")}
    assert not io and not database, f"{path.name} imports {sorted(io | database)}"
    reads_env = {"os.environ", "os.getenv", "os.environb"} & (used | attributes_of(path))
    assert not reads_env, f"{path.name} reads the environment"


@pytest.mark.parametrize("path", modules("models"), ids=names(modules("models")))
def test_models_import_neither_receiver_nor_workers(path: Path) -> None:
    outside = {n for n in imports_of(path) if n.split(".")[0] in ("receiver", "workers")}
    assert not outside, f"{path.name} imports {sorted(outside)}"


@pytest.mark.parametrize("path", modules("receiver"), ids=names(modules("receiver")))
def test_the_receiver_never_imports_the_workers(path: Path) -> None:
    workers = {name for name in imports_of(path) if name.split(".")[0] == "workers"}
    assert not workers, f"{path.name} imports {sorted(workers)}"


@pytest.mark.parametrize(
    "path", modules("workers/handlers"), ids=names(modules("workers/handlers"))
)
def test_the_handlers_never_import_the_books_they_are_given(path: Path) -> None:
    """The handlers are written against `workers.handlers.books.Books`; the books in the
    database or in memory (`workers.books`) import the handlers' side, never the reverse."""
    books = {n for n in imports_of(path) if n == "workers.books" or n.startswith("workers.books.")}
    assert not books, f"{path.name} imports {sorted(books)}"


@pytest.mark.parametrize(
    "path", modules("workers/handlers"), ids=names(modules("workers/handlers"))
)
def test_the_handlers_never_import_the_database_modules(path: Path) -> None:
    """What the handlers share with the books (`Booked`, `Redemption`, `StackCheck`) is in the
    pure models; the SQL stays behind `workers.books.SqlBooks`."""
    database = {n for n in imports_of(path) if n == "models.db" or n.startswith("models.db.")}
    assert not database, f"{path.name} imports {sorted(database)}"


def test_the_contract_sees_what_it_checks() -> None:
    """The checks read real imports: a known database module, a known pure one, and the books
    importing the handlers' interface (the direction the handlers' checks leave open)."""
    assert "sqlalchemy" in {n.split(".")[0] for n in imports_of(ROOT / "models/db/eventlog.py")}
    assert "workers.handlers.books.Books" in imports_of(ROOT / "workers/books.py")
    assert ROOT / "models/identity.py" in PURE
    assert ROOT / "models/db/eventlog.py" not in PURE
    assert "os.environ" in attributes_of(ROOT / "workers/commands/run.py")
