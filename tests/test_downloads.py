"""Downloads of published networks into the cache, without the network: a local http.server on
127.0.0.1 serves the files, one variant drops the connection half-way, one ignores Range."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ganforge.errors import UserError
from ganforge.tools import downloads
from ganforge.tools.downloads import KNOWN_NETWORKS, fetch_network

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """Serves PAYLOAD at /net.pkl. ``honour_range``: answer Range with 206; ``drops``: how many
    responses stop after half their body (the connection then closes)."""

    def __init__(self, *, honour_range: bool = True, drops: int = 0) -> None:
        self.honour_range, self.drops, self.ranges, self.sent = honour_range, drops, [], 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                if self.path.split("?")[0] != "/net.pkl":
                    self.send_error(404, "Not Found")
                    return
                asked = self.headers.get("Range")
                outer.ranges.append(asked)
                start = 0
                if asked and outer.honour_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", asked)[1])
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
                    )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.drops > 0:
                    outer.drops -= 1
                    body = body[: len(body) // 2]
                # counted before the bytes go out: the client may finish reading (and the
                # test check the count) before this thread runs again
                outer.sent += len(body)
                self.wfile.write(body)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/net.pkl"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("GANFORGE_CACHE", str(folder))
    monkeypatch.delenv("GANFORGE_OFFLINE", raising=False)
    monkeypatch.setattr(downloads, "TIMEOUT", 5)
    return folder


@pytest.fixture
def serve():
    servers = []

    def start(**kwargs) -> Server:
        servers.append(Server(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_a_local_path_is_returned_as_it_is(cache):
    assert fetch_network("runs/net.pkl") == Path("runs/net.pkl")
    assert fetch_network(Path("/x/y.pkl")) == Path("/x/y.pkl")
    assert not cache.exists()


def test_a_url_downloads_once_into_the_cache_under_its_file_name(cache, serve, caplog):
    server = serve()
    with caplog.at_level(logging.INFO, logger="ganforge"):
        path = fetch_network(server.url, sha256=SHA)
    assert path == cache / "net.pkl" and path.read_bytes() == PAYLOAD
    assert not (cache / "net.pkl.part").exists()
    assert f"downloading {server.url} (0.1 MB) to {path}" in caplog.text
    assert fetch_network(server.url) == path  # found in the cache: no second request
    assert server.ranges == [None]


def test_a_dropped_connection_is_resumed_with_a_range_request(cache, serve):
    server = serve(drops=1)
    path = fetch_network(server.url, sha256=SHA)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]
    assert server.sent == len(PAYLOAD)  # half, then the other half


def test_a_part_left_by_an_earlier_run_is_resumed(cache, serve):
    server = serve()
    cache.mkdir()
    (cache / "net.pkl.part").write_bytes(PAYLOAD[:30000])
    assert fetch_network(server.url, sha256=SHA).read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=30000-"] and server.sent == len(PAYLOAD) - 30000


def test_a_server_that_ignores_range_makes_it_start_over(cache, serve):
    server = serve(honour_range=False, drops=1)
    assert fetch_network(server.url, sha256=SHA).read_bytes() == PAYLOAD
    # the second request asked to resume, got the whole file, and the .part was rewritten
    assert server.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]
    assert server.sent == len(PAYLOAD) // 2 + len(PAYLOAD)


def test_a_transfer_that_keeps_breaking_keeps_its_part_for_the_next_call(cache, serve):
    server = serve(drops=downloads.ATTEMPTS)
    with pytest.raises(UserError, match="broke off 3 times") as err:
        fetch_network(server.url, sha256=SHA)
    assert "\n" not in str(err.value) and "run the command again to resume" in str(err.value)
    assert not (cache / "net.pkl").exists()
    kept = (cache / "net.pkl.part").stat().st_size
    assert 0 < kept < len(PAYLOAD)
    assert fetch_network(server.url, sha256=SHA).read_bytes() == PAYLOAD
    assert server.ranges[-1] == f"bytes={kept}-"


def test_a_checksum_mismatch_deletes_the_download(cache, serve):
    server = serve()
    with pytest.raises(UserError, match=f"has SHA-256 {SHA}, expected {'0' * 64}") as err:
        fetch_network(server.url, sha256="0" * 64)
    assert "\n" not in str(err.value)
    assert not (cache / "net.pkl").exists() and not (cache / "net.pkl.part").exists()


def test_the_table_checksum_applies_to_its_own_url_only(cache, serve, monkeypatch):
    server = serve()
    entry = downloads.KnownNetwork(server.url, "f" * 64, "test")
    monkeypatch.setitem(KNOWN_NETWORKS, "net.pkl", entry)
    with pytest.raises(UserError, match="expected f{64}"):
        fetch_network(server.url)
    other = server.url + "?mirror=2"  # the same file name at another URL
    assert fetch_network(other).read_bytes() == PAYLOAD


def test_offline_is_one_line_with_the_url_and_where_to_put_the_file(cache):
    url = "http://127.0.0.1:9/x.pkl"
    with pytest.raises(UserError) as err:
        fetch_network(url)
    message = str(err.value)
    assert message.startswith(f"cannot download {url} (") and "\n" not in message
    assert message.endswith(f"download it by hand to {cache / 'x.pkl'} and run the command again")


def test_http_errors_and_offline_mode_are_one_line(cache, serve, monkeypatch):
    server = serve()
    with pytest.raises(UserError, match=r"\(HTTP 404 Not Found\); download it by hand to"):
        fetch_network(server.url.replace("net.pkl", "missing.pkl"))
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    with pytest.raises(UserError, match=r"\(GANFORGE_OFFLINE is set\)"):
        fetch_network(server.url)
    assert server.ranges == []  # neither reached /net.pkl


def test_a_cached_file_from_another_url_is_not_taken(cache, serve):
    server = serve()
    fetch_network(server.url)
    with pytest.raises(UserError, match=r"came from http://127.0.0.1:\d+/net.pkl, not .*\?v=2"):
        fetch_network(server.url + "?v=2")


def test_a_file_put_in_the_cache_by_hand_is_used(cache):
    cache.mkdir()
    (cache / "stylegan2-ffhq-1024x1024.pkl").write_bytes(b"by hand")
    url = KNOWN_NETWORKS["stylegan2-ffhq-1024x1024.pkl"].url
    assert fetch_network(url).read_bytes() == b"by hand"


def test_other_schemes_and_urls_without_a_file_name_are_refused(cache):
    with pytest.raises(UserError, match="only http:// and https://"):
        fetch_network("ftp://example.org/net.pkl")
    with pytest.raises(UserError, match="names no file"):
        fetch_network("https://example.org/")


def test_known_networks_name_their_files_and_come_from_the_readmes():
    assert len(KNOWN_NETWORKS) == 7 + 15 + 12
    for name, (url, sha256, note) in KNOWN_NETWORKS.items():
        assert url.rsplit("/", 1)[-1] == name
        assert url.startswith(
            (
                "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/",
                "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/",
                "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/",
            )
        )
        assert sha256 is None or re.fullmatch("[0-9a-f]{64}", sha256)
        kind = "stylegan3" if name.startswith("stylegan3-") else "stylegan2"
        assert f"; {kind};" in note
