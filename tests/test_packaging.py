"""ocpplab installs like a package: its wheel carries the templates and static files and runs
without the checkout, while the editable install (the tests' own) reads them from the checkout.

The wheel is built once, with pip as a user would, from the same files the Dockerfile's build
stage and `.ci/run` copy; `.ci/run` also installs it into a fresh venv and starts it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import ocpplab
from ocpplab.web import templating

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "ocpplab", "templates", "static")
SHIPPED = ("templates", "static")
START_TIMEOUT = 30.0


def files_under(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(site: Path) -> dict[str, str]:
    """This interpreter, with the unpacked wheel ahead of the editable checkout on sys.path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OCPPLAB_")}
    env["PYTHONPATH"] = str(site)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    built = subprocess.run(
        [*command, "--wheel-dir", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (found,) = (work / "dist").glob("ocpplab-*.whl")
    return found


@pytest.fixture
def site(wheel: Path, tmp_path: Path) -> Path:
    """The wheel unpacked, as pip lays it out in site-packages."""
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    return unpacked


@contextlib.contextmanager
def running(site: Path) -> Iterator[str]:
    """`python -m ocpplab` from the unpacked wheel, run outside the checkout; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "ocpplab", "--port", str(port), "--log-level", "warning"],
        cwd=site.parent,
        env=environment(site),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(url + "/healthz", timeout=1)
                break
            assert time.monotonic() < deadline, "ocpplab from the wheel did not answer"
            time.sleep(0.05)
        else:
            pytest.fail(f"ocpplab from the wheel exited:\n{process.communicate()[1]}")
        yield url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_the_wheel_holds_every_template_and_static_file_inside_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for folder in SHIPPED:
        prefix = f"ocpplab/{folder}/"
        packed = {name.removeprefix(prefix) for name in names if name.startswith(prefix)}
        assert packed == files_under(ROOT / folder), folder
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"ocpplab", f"ocpplab-{ocpplab.__version__}.dist-info"}


def test_ocpplab_from_the_wheel_finds_its_folders_inside_the_package(site: Path) -> None:
    printed = subprocess.run(
        [sys.executable, "-c", "from ocpplab.web import templating as t; print(t.TEMPLATES_DIR)"],
        cwd=site.parent,
        env=environment(site),
        capture_output=True,
        text=True,
        check=False,
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == str(site / "ocpplab" / "templates")


def test_ocpplab_from_the_wheel_serves_pages_and_static_files(site: Path) -> None:
    with running(site) as url:
        assert httpx.get(url + "/healthz").status_code == 200
        landing = httpx.get(url + "/")
        assert landing.status_code == 200
        assert f"ws://{url.removeprefix('http://')}/ocpp/" in landing.text
        page = httpx.get(url + "/chargers/CP-wheel")
        assert page.status_code == 200
        assert "CP-wheel" in page.text
        for name in ("app.js", "app.css", "vendor/htmx-2.0.11/htmx.min.js"):
            served = httpx.get(f"{url}/static/{name}")
            assert served.status_code == 200, name
            assert served.content == (ROOT / "static" / name).read_bytes(), name


def test_an_install_without_its_static_folder_says_what_is_missing(site: Path) -> None:
    shutil.rmtree(site / "ocpplab" / "static")
    started = subprocess.run(
        [sys.executable, "-c", "import ocpplab.app"],
        cwd=site.parent,
        env=environment(site),
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode != 0
    assert "ocpplab's static/ folder is missing" in started.stderr


def test_the_editable_install_reads_templates_and_static_files_from_the_checkout() -> None:
    assert templating.TEMPLATES_DIR == ROOT / "templates"
    assert templating.STATIC_DIR == ROOT / "static"
