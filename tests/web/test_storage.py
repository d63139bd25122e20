"""ObjectStore: local folder and S3 (moto in server mode, a real HTTP endpoint on 127.0.0.1)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sketch2face.errors import ConfigError
from sketch2face.storage import ObjectNotFoundError, ObjectStore, open_store


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a random local port (module-wide: it takes ~1 s to start)."""
    pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


S3_OPTIONS = {"region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing"}


def make_s3_store(endpoint: str, bucket: str, prefix: str = "p/q") -> ObjectStore:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    return open_store(f"s3://{bucket}/{prefix}", options={"endpoint_url": endpoint, **S3_OPTIONS})


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store(tmp_path / "objects")
    endpoint = request.getfixturevalue("moto_endpoint")
    return make_s3_store(endpoint, f"b-{tmp_path.name.lower().replace('_', '-')[-40:]}")


def test_put_get_exists_delete(store: ObjectStore) -> None:
    assert not store.exists("a/b.png")
    store.put("a/b.png", b"one", content_type="image/png")
    store.put("a/b.png", b"two")  # replace
    assert store.exists("a/b.png") and store.get("a/b.png") == b"two"
    store.delete("a/b.png")
    store.delete("a/b.png")  # missing: not an error
    assert not store.exists("a/b.png")
    with pytest.raises(ObjectNotFoundError):
        store.get("a/b.png")


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../b", "a//b", "a\\b", "", "a/./b"])
def test_unsafe_keys_are_rejected(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"x")


def test_local_store_writes_atomically_and_cleans_folders(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path / 'o'}")
    store.put("g/1/face.png", b"data")
    assert sorted(p.name for p in (tmp_path / "o" / "g" / "1").iterdir()) == ["face.png"]
    store.delete("g/1/face.png")
    assert list((tmp_path / "o").iterdir()) == []  # empty folders removed up to the root


def test_s3_objects_live_under_the_prefix(moto_endpoint: str) -> None:
    import boto3

    store = make_s3_store(moto_endpoint, "prefix-check", prefix="site/a")
    store.put("k/v.png", b"x")
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="prefix-check")["Contents"]]
    assert keys == ["site/a/k/v.png"]


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="scheme"):
        open_store("ftp://x/y")
    with pytest.raises(ConfigError, match="bucket"):
        open_store("s3:///prefix")


def test_storage_imports_without_boto3_and_s3_names_the_extra() -> None:
    """The factory imports the S3 backend eagerly; boto3 must still stay optional."""
    code = (
        "import sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None\n"
        "from sketch2face.errors import ConfigError\n"
        "from sketch2face.storage import open_store\n"
        "try:\n    open_store('s3://bucket/prefix')\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "sketch2face[s3]" in result.stdout


def test_base_module_imports_no_backend() -> None:
    """``storage.base`` is the protocol layer: backends import it, never the reverse."""
    import sketch2face.storage.base as base

    tree = ast.parse(Path(base.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("sketch2face.storage")}


def test_web_app_on_s3(settings: Any, web_model_client: Any, moto_endpoint: str) -> None:
    """The whole generate -> view -> delete flow with images in S3."""
    import boto3

    from .web_support import WebClient, generation_id_from, make_app

    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="web")
    app = make_app(
        settings.replace(
            storage_url="s3://web/images",
            s3_endpoint_url=moto_endpoint,
            s3_region="us-east-1",
            s3_access_key_id="testing",
            s3_secret_access_key="testing",
        ),
        web_model_client,
    )
    c = WebClient(app)
    c.login("alice")
    gid = generation_id_from(c.generate())
    image = c.get(f"/generations/{gid}/face.png")
    assert image.status_code == 200 and image.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.post(f"/generations/{gid}/delete").status_code == 302
    listing = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).list_objects_v2(Bucket="web")
    assert listing.get("KeyCount", 0) == 0
